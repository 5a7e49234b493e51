"""Finds experiments, loads their configs and runs them; `run.py` only adds flags.

An experiment is `experiments/<name>.py` with `VARIANTS` (the names it accepts
after a colon, '' for none) and `get_config(variant)`; its config's `job` names the
library module that runs it (see `JOBS`). With `FLIPNUM_DISTRIBUTED=1` in the
environment, the run is one process of several (`initialize_distributed`).
"""

import importlib
import logging as std_logging
import os
import pathlib
from typing import Mapping

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
    'pool_readings': 'flipnum_jax.judges.pooled',
    'choice_replay': 'flipnum_jax.judges.choice_replay',
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


# The environment of a run over several processes, read by `initialize_distributed`
# (run.py defines flags only; these belong to the launcher, one value per process).
DISTRIBUTED_ENV = 'FLIPNUM_DISTRIBUTED'
NUM_PROCESSES_ENV = 'FLIPNUM_NUM_PROCESSES'
PROCESS_ID_ENV = 'FLIPNUM_PROCESS_ID'


def _optional_int(environ: Mapping[str, str], name: str) -> int | None:
  value = environ.get(name)
  if value is None:
    return None
  try:
    return int(value)
  except ValueError:
    raise ConfigError(f'${name} must be an integer, not {value!r}') from None


def initialize_distributed(environ: Mapping[str, str] = os.environ) -> None:
  """Joins a run over several processes when `FLIPNUM_DISTRIBUTED=1`; else nothing.

  Must come before anything touches a device. JAX reads the coordinator's
  host:port from `JAX_COORDINATOR_ADDRESS` (and, optionally, this process's
  devices from `JAX_LOCAL_DEVICE_IDS`); the number of processes and this one's
  index come from `FLIPNUM_NUM_PROCESSES` and `FLIPNUM_PROCESS_ID`. JAX finds all
  three by itself under SLURM, Open MPI, Kubernetes or on Cloud TPU. Then every
  process runs the same experiment: the candidates split over all processes'
  devices (`sharding`), and process 0 alone writes (`io.is_writer`).
  """
  if environ.get(DISTRIBUTED_ENV) != '1':
    return
  num_processes = _optional_int(environ, NUM_PROCESSES_ENV)
  process_id = _optional_int(environ, PROCESS_ID_ENV)
  # Across processes, CPU devices exchange data through gloo (JAX 0.10's default,
  # named here so that a change of default cannot leave them without any).
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(num_processes=num_processes, process_id=process_id)
  logging.info('Process %d of %d, with %d of the %d devices.', jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())


def quiet_library_logs() -> None:
  """Drops orbax's INFO chatter from the absl log, keeping its warnings."""
  logging.get_absl_logger().addFilter(
      lambda record: record.levelno >= std_logging.WARNING
      or '/orbax/' not in record.pathname)
