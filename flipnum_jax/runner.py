"""Finds experiments, loads their configs and runs them; `run.py` only adds flags.

An experiment is `experiments/<name>.py` with `VARIANTS` (the names it accepts
after a colon, '' for none) and `get_config(variant)`; its config's `job` names the
library module that runs it (see `JOBS`).
"""

import importlib
import logging as std_logging
import pathlib

import jax
import ml_collections
from absl import logging

from flipnum_jax import io
from flipnum_jax.errors import ConfigError

EXPERIMENTS_DIR = pathlib.Path(__file__).resolve().parent.parent / 'experiments'

# job name → module whose run_experiment(config, workspace, name) runs it.
# Imported only when its job runs, so that generating jobs never import the judges.
JOBS = {
    'train': 'flipnum_jax.train',
    'pairs': 'flipnum_jax.pairs',
    'dreams': 'flipnum_jax.dreams',
    'diffusion': 'flipnum_jax.diffusion',
    'number': 'flipnum_jax.number',
    'gallery': 'flipnum_jax.gallery',
    'evaluate': 'flipnum_jax.judges.evaluate',
    'bench': 'flipnum_jax.bench',
    'reading_test': 'flipnum_jax.reading_test',
    'readability': 'flipnum_jax.readability',
}


def known_experiments() -> list[str]:
  return sorted(p.stem for p in EXPERIMENTS_DIR.glob('*.py') if p.stem != '__init__')


def load_config(spec: str) -> tuple[str, ml_collections.ConfigDict]:
  """`name` or `name:variant` → (name, the experiment's config)."""
  name, _, variant = spec.partition(':')
  if name not in known_experiments():
    raise ConfigError(f'unknown experiment {name!r}; known: '
                      f'{", ".join(known_experiments())}')
  module = importlib.import_module(f'experiments.{name}')
  if variant not in module.VARIANTS:
    raise ConfigError(f'{name} has the variants {module.VARIANTS}, not {variant!r}')
  return name, module.get_config(variant)


def output_name(spec: str) -> str:
  """Where `name[:variant]` writes in the workdir: `name`, or `name/variant`, so that
  a variant (a smoke run, say) never overwrites the plain run's outputs, which other
  experiments read by default."""
  name, _, variant = spec.partition(':')
  return f'{name}/{variant}' if variant else name


def has_key(config: ml_collections.ConfigDict, dotted_key: str) -> bool:
  """Whether `config` has the (possibly nested) key `a.b.c`."""
  node = config
  for part in dotted_key.split('.'):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      return False
    node = node[part]
  return True


def compilation_cache_dir(workdir: str) -> pathlib.Path:
  return pathlib.Path(workdir) / 'cache' / 'jax'


def enable_compilation_cache(workdir: str) -> None:
  """Keeps compiled XLA programs in `<workdir>/cache/jax`, so a second run of the
  same experiment skips compiling (the `bench` experiment measures the gain)."""
  jax.config.update('jax_compilation_cache_dir', str(compilation_cache_dir(workdir)))
  # The kit's programs compile in about a second; cache every one of them.
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)


def run(name: str, config: ml_collections.ConfigDict, workdir: str,
        data_dir: str | None) -> None:
  if config.job not in JOBS:
    raise ConfigError(f'job {config.job!r} is not one of {", ".join(sorted(JOBS))}')
  try:  # here, so that an unusable workdir is one line, not a traceback mid-run
    pathlib.Path(workdir).mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise ConfigError(f'cannot create --workdir {workdir} ({e.strerror})') from None
  enable_compilation_cache(workdir)
  importlib.import_module(JOBS[config.job]).run_experiment(
      config, io.Workspace(workdir, data_dir), name)


def quiet_library_logs() -> None:
  """Drops orbax's INFO chatter from the absl log, keeping its warnings."""
  logging.get_absl_logger().addFilter(
      lambda record: record.levelno >= std_logging.WARNING
      or '/orbax/' not in record.pathname)
