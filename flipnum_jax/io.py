"""The workspace (workdir layout, MNIST loaded once per run) and atomic file writes.

Every file the kit writes goes through `atomic_path` (`atomic_write`, `write_json`,
`write_npz`, the plots): the bytes land in a temporary file beside the target,
which is then renamed over it, so an interrupted run never leaves a half-written
file that a later run would trust. In a run over several processes only process 0
writes (`is_writer`); see `atomic_path`.
"""

import contextlib
import dataclasses
import functools
import io
import json
import os
import pathlib
import tempfile
from typing import Any, Iterator

import jax
import numpy as np

from flipnum_jax import data


@dataclasses.dataclass(frozen=True)
class Workspace:
  """Where a run reads and writes: the workdir, the MNIST folder (None: as
  `data.load_mnist` finds it) and MNIST itself, loaded at most once per run."""
  workdir: pathlib.Path
  data_dir: str | None = None

  def __post_init__(self):
    object.__setattr__(self, 'workdir', pathlib.Path(self.workdir))

  def model_dir(self, name: str) -> pathlib.Path:
    """Where the trained model `name` lives: `<workdir>/models/<name>/`."""
    return self.workdir / 'models' / name

  def output_dir(self, experiment: str) -> pathlib.Path:
    """Where an experiment's outputs go: `<workdir>/<experiment>/`."""
    return self.workdir / experiment

  @functools.cached_property
  def mnist(self) -> data.Mnist:
    return data.load_mnist(self.data_dir)


def is_writer() -> bool:
  """Whether this process writes the run's files: the only process of an ordinary
  run, process 0 of a run over several (`runner.initialize_distributed`)."""
  return jax.process_index() == 0


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[pathlib.Path]:
  """Yields a temporary path beside `path`; renames it to `path` on success.

  In any process but the writer the path lies in a scratch folder deleted on exit,
  so callers write as they would alone and nothing reaches the workdir. That loses
  nothing: every process runs the same program on the same inputs and gathers the
  same results (`sharding.to_host`), so process 0 writes the bytes each other
  process would have, once, even when all share one workdir. (Only the reading
  test's answer server reads back what it wrote; it is no job to spread over
  processes.)
  """
  path = pathlib.Path(path)
  if not is_writer():
    with tempfile.TemporaryDirectory() as scratch:
      yield pathlib.Path(scratch) / path.name
    return
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp_name = tempfile.mkstemp(
      dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
  os.close(fd)
  tmp = pathlib.Path(tmp_name)
  try:
    yield tmp
    tmp.chmod(0o644)  # mkstemp makes 0600 files; outputs are meant to be shared.
    os.replace(tmp, path)
  finally:
    tmp.unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
  with atomic_path(path) as tmp:
    tmp.write_bytes(data)


def write_json(path: str | os.PathLike, obj: Any) -> None:
  atomic_write(path, (json.dumps(obj, indent=2, sort_keys=True) + '\n').encode())


def write_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
  buffer = io.BytesIO()
  np.savez_compressed(buffer, **arrays)
  atomic_write(path, buffer.getvalue())
