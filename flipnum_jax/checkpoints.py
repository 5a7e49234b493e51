"""Saving and loading trained models: `<workdir>/models/<name>/`.

A model folder holds `params/` (orbax), `config.json` (the config it was trained
with; `train.identity` says which of its fields decide whether it is reused) and
`metrics.json`. `metrics.json` is written last, so its presence marks a
complete model; every file is written atomically (orbax renames its own temporary
folder into place). In a run over several processes every process trains or loads
its own copy (the same weights: same data, same keys, same program), and only
process 0 saves it (`io.is_writer`).
"""

import json
import pathlib
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import orbax.checkpoint as ocp
from absl import logging
from flax import nnx

from flipnum_jax import io
from flipnum_jax.errors import CheckpointError

PARAMS = 'params'
CONFIG = 'config.json'
METRICS = 'metrics.json'


def config_to_dict(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """A ConfigDict as plain JSON data (tuples become lists), for comparison on disk."""
  return json.loads(config.to_json())


def _checkpointer() -> ocp.StandardCheckpointer:
  """An orbax checkpointer of this process alone. By default orbax makes all
  processes of a multi-process run meet at barriers (at the start of every save,
  for one); here only process 0 saves, and each process restores (or trains) on
  its own, so those barriers would wait forever."""
  this = jax.process_index()
  options = ocp.options.MultiprocessingOptions(primary_host=this,
                                               active_processes={this})
  return ocp.StandardCheckpointer(multiprocessing_options=options)


def _savable(state: dict[str, Any]) -> dict[str, Any]:
  """`state` as orbax saves it: in a multi-process run, orbax refuses arrays held
  by one process's devices alone, so they go as NumPy copies (same values)."""
  return jax.device_get(state) if jax.process_count() > 1 else state


def save(folder: pathlib.Path, model: nnx.Module,
         config: ml_collections.ConfigDict, metrics: dict[str, Any]) -> None:
  """Saves a trained model; an interrupted save leaves no `metrics.json`. Only
  the writing process saves (see `io.atomic_path` for why that is safe)."""
  if not io.is_writer():
    return
  (folder / METRICS).unlink(missing_ok=True)
  folder.mkdir(parents=True, exist_ok=True)
  with _checkpointer() as checkpointer:
    checkpointer.save((folder / PARAMS).absolute(),
                      _savable(nnx.to_pure_dict(nnx.state(model))), force=True)
  io.write_json(folder / CONFIG, config_to_dict(config))
  io.write_json(folder / METRICS, metrics)
  logging.info('Saved %s to %s.', config.name, folder)


def saved_config(folder: pathlib.Path) -> dict[str, Any] | None:
  """The config a complete model in `folder` was trained with, or None if none is."""
  if not (folder / METRICS).is_file():
    return None
  try:
    return json.loads((folder / CONFIG).read_text())
  except (OSError, ValueError) as e:
    raise CheckpointError(f'{folder / CONFIG} is unreadable ({e}); delete {folder} '
                          'to retrain') from None


def _restore_target(state: nnx.State) -> dict[str, Any]:
  """The shapes of `state` to restore into, on this process's first device: the
  checkpoint names the device it was saved from, which another process of a
  multi-process run cannot address."""
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype,
                                                        sharding=device),
                      nnx.to_pure_dict(state))


def _uncommitted(arrays: dict[str, Any]) -> dict[str, Any]:
  """Restored `arrays` as free as freshly trained ones. Orbax commits them to one
  device, and `jit` refuses an argument committed to one device beside inputs split
  over several (`sharding.shard_batch`), while it copies an uncommitted one to every
  device (in a multi-process run, each process its own copy)."""
  return jax.tree.map(jnp.asarray, jax.device_get(arrays))


def load(folder: pathlib.Path,
         make_model: Callable[[], nnx.Module]) -> tuple[nnx.Module, dict[str, Any]]:
  """Restores the model that `make_model` builds from `folder`, and its metrics."""
  graphdef, state = nnx.split(nnx.eval_shape(make_model))
  try:
    metrics = json.loads((folder / METRICS).read_text())
    with _checkpointer() as checkpointer:
      restored = checkpointer.restore((folder / PARAMS).absolute(),
                                      _restore_target(state))
  except Exception as e:  # pylint: disable=broad-except
    # Orbax raises many types (ValueError, FileNotFoundError, tensorstore errors).
    message = (str(e).splitlines() or [type(e).__name__])[0]
    raise CheckpointError(f'the checkpoint in {folder} is damaged ({message[:200]}); '
                          f'delete {folder} to retrain') from None
  nnx.replace_by_pure_dict(state, _uncommitted(restored))
  return nnx.merge(graphdef, state), metrics


# Models committed with the kit (`pretrained/<name>/`, same layout as a workdir's),
# used when the workdir has none trained with the same config.
PRETRAINED_DIR = pathlib.Path(__file__).resolve().parent.parent / 'pretrained'


def load_or_train(folder: pathlib.Path, config: ml_collections.ConfigDict,
                  identity: Callable[[dict[str, Any]], dict[str, Any]],
                  make_model: Callable[[], nnx.Module],
                  train: Callable[[], tuple[nnx.Module, dict[str, Any]]],
                  ) -> tuple[nnx.Module, dict[str, Any]]:
  """The model in `folder` if its saved config has the same `identity` (the fields
  that shape the weights) as `config`, else the one in `PRETRAINED_DIR` if that
  has; otherwise `train()`s one and saves it in `folder`. `make_model` builds the
  shapes to restore into."""
  wanted = identity(config_to_dict(config))
  for source in (folder, PRETRAINED_DIR / config.name):
    saved = saved_config(source)
    if saved is not None and identity(saved) == wanted:
      model, metrics = load(source, make_model)
      logging.info('Loaded %s from %s.', config.name, source)
      return model, metrics
  logging.info('No %s trained with these weight settings in %s: training it.',
               config.name, folder)
  model, metrics = train()
  save(folder, model, config, metrics)
  return model, metrics
