"""MNIST loading and checks; nothing else in the kit reads MNIST files.

Sources, in this order:
1. a folder with the four standard IDX files (`.gz` or uncompressed), named by the
   `data_dir` argument or else the `FLIPNUM_DATA_DIR` environment variable. A folder
   that is named but unusable is an error, never a silent fall-back: the user asked
   for those files.
2. with no folder named, the kit's cache, `$XDG_CACHE_HOME/flipnum_jax/mnist` (else
   `~/.cache/flipnum_jax/mnist`). A file missing from it is downloaded once, with the
   standard library only, from `MIRRORS` tried in turn, so a fresh clone runs on any
   machine with internet and no TensorFlow. A download lands in a temporary file
   beside its target and is renamed into place only after its uncompressed bytes
   match the published MD5, so a dead mirror, an HTTP error, a timeout, a corrupt or
   an interrupted download never leaves a file that a later run would trust.
3. tensorflow-datasets, only when every mirror failed for some file and TensorFlow
   is installed (`pip install -r requirements-tfds.txt`): tensorflow-datasets itself
   comes with requirements.txt, but without TensorFlow it cannot prepare MNIST, and
   offline it spends minutes in retries (205 s measured) before it gives up; so
   without TensorFlow the error comes at once, saying how to work offline.
Every file read, whatever its source, is checked against the published MD5 of its
uncompressed bytes (`IDX_MD5`).
"""

import gzip
import hashlib
import http.client
import importlib.util
import os
import pathlib
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from typing import NamedTuple, Sequence

import numpy as np
from absl import logging

from flipnum_jax.errors import DataError

DATA_DIR_ENV = 'FLIPNUM_DATA_DIR'

# Published MD5s of the uncompressed IDX files (yann.lecun.com/exdb/mnist).
IDX_MD5 = {
    'train-images-idx3-ubyte': '6bbc9ace898e44ae57da46a324031adb',
    'train-labels-idx1-ubyte': 'a25bea736e30d166cdddb491f175f624',
    't10k-images-idx3-ubyte': '2646ac647ad5339dbf082846283269ea',
    't10k-labels-idx1-ubyte': '27ae3e4e09519cfbb04c329615203637',
}

# Public copies of `<stem>.gz`, tried in this order: the two cloud buckets first
# (HTTPS, and the ones PyTorch and TensorFlow download from), the original site
# last (plain HTTP, and at times refusing downloads). The MD5 check, not the
# transport, is what makes a file trusted.
MIRRORS = (
    'https://ossci-datasets.s3.amazonaws.com/mnist/',
    'https://storage.googleapis.com/cvdf-datasets/mnist/',
    'http://yann.lecun.com/exdb/mnist/',
)

# Seconds without a byte (connecting or reading) before a mirror counts as dead.
TIMEOUT_S = 30.0

# Seconds between two progress lines of one download.
_PROGRESS_EVERY_S = 2.0

_HOW_TO_GET = (
    'put the four MNIST IDX files (' + ', '.join(f'{stem}.gz' for stem in IDX_MD5)
    + f') in a folder and set {DATA_DIR_ENV}=FOLDER or pass --data_dir=FOLDER, or '
    'install TensorFlow for tensorflow-datasets (`pip install -r '
    'requirements-tfds.txt`) and let it download them')


class Mnist(NamedTuple):
  """MNIST as numpy arrays: uint8 images (N, 28, 28), int32 labels (N,)."""
  train_images: np.ndarray
  train_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray


def parse_idx(raw: bytes, name: str = 'IDX data') -> np.ndarray:
  """Parses an unsigned-byte IDX file (images or labels) into a uint8 array."""
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
    raise DataError(f'{name} is not an IDX file (bad magic number)')
  if raw[2] != 0x08:
    raise DataError(f'{name} holds type 0x{raw[2]:02x}, expected unsigned bytes')
  ndim = raw[3]
  header = 4 + 4 * ndim
  if len(raw) < header:
    raise DataError(f'{name} is truncated (incomplete header)')
  shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim))
  expected = header + int(np.prod(shape))
  if len(raw) != expected:
    raise DataError(f'{name} has {len(raw)} bytes, its header promises {expected} '
                    '(truncated or corrupt)')
  return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def _read_verified(folder: pathlib.Path, stem: str) -> np.ndarray:
  candidates = [folder / (stem + '.gz'), folder / stem]
  path = next((p for p in candidates if p.is_file()), None)
  if path is None:
    raise DataError(f'{folder} has no {stem}.gz (nor {stem}): {_HOW_TO_GET}')
  try:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == '.gz' else path.read_bytes()
  except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
    raise DataError(f'{path} cannot be decompressed ({e}): it is truncated or '
                    'corrupt; download it again') from None
  if hashlib.md5(raw).hexdigest() != IDX_MD5[stem]:
    raise DataError(f'{path} does not match the published MD5 of {stem}: it is '
                    'truncated or corrupt; download it again')
  return parse_idx(raw, str(path))


def _mnist(arrays: dict[str, np.ndarray]) -> Mnist:
  return Mnist(
      train_images=arrays['train-images-idx3-ubyte'],
      train_labels=arrays['train-labels-idx1-ubyte'].astype(np.int32),
      test_images=arrays['t10k-images-idx3-ubyte'],
      test_labels=arrays['t10k-labels-idx1-ubyte'].astype(np.int32))


def load_idx_folder(folder: str | os.PathLike) -> Mnist:
  """Reads and verifies the four IDX files in `folder`."""
  folder = pathlib.Path(folder)
  if not folder.is_dir():
    raise DataError(f'MNIST folder {folder} does not exist: {_HOW_TO_GET}')
  return _mnist({stem: _read_verified(folder, stem) for stem in IDX_MD5})


def cache_dir() -> pathlib.Path:
  """Where downloaded MNIST is kept: `$XDG_CACHE_HOME/flipnum_jax/mnist`, else
  `~/.cache/flipnum_jax/mnist`; the XDG convention, so cache cleaners find it."""
  base = os.environ.get('XDG_CACHE_HOME') or pathlib.Path.home() / '.cache'
  return pathlib.Path(base) / 'flipnum_jax' / 'mnist'


class _MirrorError(Exception):
  """One mirror gave no usable file; the next one is worth trying."""


def _one_line(error: BaseException) -> str:
  return ' '.join(f'{type(error).__name__}: {error}'.split())


def _download(url: str, dest: pathlib.Path, timeout: float) -> None:
  """Writes the body at `url` into `dest`, logging progress; a body shorter than its
  Content-Length is an error (http.client would end such a read silently)."""
  with urllib.request.urlopen(url, timeout=timeout) as response, dest.open('wb') as f:
    total = int(response.headers.get('Content-Length') or 0)
    done, last_report = 0, time.monotonic()
    while chunk := response.read(1 << 16):
      f.write(chunk)
      done += len(chunk)
      if time.monotonic() - last_report >= _PROGRESS_EVERY_S:
        logging.info('  %s: %d of %s bytes', url, done, total or 'unknown')
        last_report = time.monotonic()
  if total and done != total:
    raise _MirrorError(f'the download stopped after {done} of {total} bytes')
  logging.info('  %s: %d bytes, complete', url, done)


def _check_gz(path: pathlib.Path, stem: str) -> None:
  try:
    raw = gzip.decompress(path.read_bytes())
  except (OSError, EOFError, zlib.error) as e:
    raise _MirrorError(f'not a valid gzip file ({_one_line(e)})') from None
  if hashlib.md5(raw).hexdigest() != IDX_MD5[stem]:
    raise _MirrorError('the uncompressed bytes do not match the published MD5 of '
                       f'{stem}')


def _fetch_from(url: str, target: pathlib.Path, stem: str, timeout: float) -> None:
  """Downloads `url` to a temporary file beside `target`, checks it, then renames it
  to `target`: `target` is either absent or verified, whatever happens, and the
  temporary file never outlives the call (short of the process being killed)."""
  fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f'.{target.name}.',
                                  suffix='.part')
  os.close(fd)
  tmp = pathlib.Path(tmp_name)
  try:
    _download(url, tmp, timeout)
    _check_gz(tmp, stem)
    tmp.chmod(0o644)  # mkstemp makes 0600 files; a cache is meant to be shared.
    os.replace(tmp, target)
  finally:
    tmp.unlink(missing_ok=True)


def fetch_idx(folder: str | os.PathLike, stem: str, mirrors: Sequence[str] = MIRRORS,
              timeout: float = TIMEOUT_S) -> pathlib.Path:
  """Downloads `<stem>.gz` into `folder` from the first of `mirrors` (base URLs ending
  in `/`) that serves it intact; returns its path. A failing mirror is logged and the
  next one tried; if all fail, the error says how to get MNIST without them."""
  folder = pathlib.Path(folder)
  target = folder / f'{stem}.gz'
  reason = 'no mirror given'
  for base in mirrors:
    url = base + target.name
    logging.info('Downloading %s into %s', url, folder)
    try:
      _fetch_from(url, target, stem, timeout)
      return target
    except (_MirrorError, urllib.error.URLError, http.client.HTTPException, OSError,
            ValueError) as e:  # URLError covers HTTP errors; OSError, timeouts
      reason = _one_line(e)
      logging.warning('MNIST mirror %s failed for %s (%s); trying the next one.',
                      base, target.name, reason)
  raise DataError(f'could not download {target.name} from any of {len(mirrors)} MNIST '
                  f'mirror(s) (last: {reason}); to work offline, {_HOW_TO_GET}')


def _cached(folder: pathlib.Path, stem: str, mirrors: Sequence[str],
            timeout: float) -> np.ndarray:
  if (folder / f'{stem}.gz').is_file():
    try:
      return _read_verified(folder, stem)
    except DataError as e:
      logging.warning('Replacing an unusable cached file: %s', e)
  fetch_idx(folder, stem, mirrors, timeout)
  return _read_verified(folder, stem)


def load_cache(folder: str | os.PathLike | None = None,
               mirrors: Sequence[str] = MIRRORS, timeout: float = TIMEOUT_S) -> Mnist:
  """MNIST from the cache `folder` (default `cache_dir()`), downloading first the
  files it lacks or holds corrupt. Unlike a named folder, the cache is the kit's own,
  so a bad file in it is replaced rather than reported."""
  folder = pathlib.Path(folder) if folder is not None else cache_dir()
  try:
    folder.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise DataError(f'cannot create the MNIST cache {folder} ({_one_line(e)}): '
                    f'{_HOW_TO_GET}') from None
  return _mnist({stem: _cached(folder, stem, mirrors, timeout) for stem in IDX_MD5})


def _tfds_split(builder, split: str) -> tuple[np.ndarray, np.ndarray]:
  source = builder.as_data_source(split=split)
  records = [source[i] for i in range(len(source))]
  images = np.stack([r['image'] for r in records]).reshape(-1, 28, 28).astype(np.uint8)
  labels = np.array([r['label'] for r in records], np.int32)
  return images, labels


def load_tfds(tfds_data_dir: str | None = None) -> Mnist:
  """Reads MNIST through tensorflow-datasets, downloading and preparing it once."""
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise DataError(f'no MNIST folder is set and tensorflow-datasets is not '
                    f'installed: {_HOW_TO_GET}') from None
  logging.info('No MNIST folder set: asking tensorflow-datasets (downloads on first '
               'use).')
  builder = tfds.builder('mnist', data_dir=tfds_data_dir)
  try:
    builder.download_and_prepare()
  except ModuleNotFoundError as e:
    raise DataError(f'tensorflow-datasets needs {e.name} to prepare MNIST: '
                    f'{_HOW_TO_GET}') from None
  except Exception as e:  # pylint: disable=broad-except
    # Offline, tfds raises connection errors of several types after its retries.
    raise DataError(f'tensorflow-datasets could not get MNIST '
                    f'({type(e).__name__}): {_HOW_TO_GET}') from None
  train_images, train_labels = _tfds_split(builder, 'train')
  test_images, test_labels = _tfds_split(builder, 'test')
  return Mnist(train_images, train_labels, test_images, test_labels)


def _tfds_can_prepare() -> bool:
  """Whether tensorflow-datasets can prepare MNIST here: it needs TensorFlow, which
  only requirements-tfds.txt installs. Looked up, not imported (imports are slow)."""
  return all(importlib.util.find_spec(m) is not None
             for m in ('tensorflow_datasets', 'tensorflow'))


def load_mnist(data_dir: str | None = None, mirrors: Sequence[str] = MIRRORS) -> Mnist:
  """MNIST from `data_dir`, else from $FLIPNUM_DATA_DIR, else from the cache (filled
  from `mirrors`), else, with TensorFlow installed, from tensorflow-datasets."""
  folder = data_dir or os.environ.get(DATA_DIR_ENV)
  if folder:
    return load_idx_folder(folder)
  logging.info('No MNIST folder set (--data_dir, $%s): using the cache %s.',
               DATA_DIR_ENV, cache_dir())
  try:
    return load_cache(mirrors=mirrors)
  except DataError as e:
    if not _tfds_can_prepare():
      raise
    logging.warning('%s; trying tensorflow-datasets instead.', e)
  return load_tfds()


def to_float(images: np.ndarray) -> np.ndarray:
  """uint8 MNIST → float32 in [0, 1] (0 = background, 1 = ink)."""
  return images.astype(np.float32) / 255.0


# Digits that are flip digits by nature: 0, 1 and 8 read as themselves turned 180°,
# 6 as 9 and 9 as 6.
NATURAL_FLIPS = {0: 0, 1: 1, 8: 8, 6: 9, 9: 6}


def first_test_examples(mnist: Mnist, digits: np.ndarray) -> np.ndarray:
  """The first test image of each digit, as floats: the grids' guides."""
  firsts = [int(np.argmax(mnist.test_labels == d)) for d in digits]
  return to_float(mnist.test_images[firsts])


def natural_flips(mnist: Mnist, per_digit: int = 20) -> tuple[np.ndarray, np.ndarray]:
  """Real test digits that are flip digits by nature, the first `per_digit` of each
  of 0, 1, 8, 6, 9: images float32 (N, 28, 28) and their pairs (N, 2), the control
  that the judges and the blind readers both calibrate against."""
  index = np.concatenate([np.flatnonzero(mnist.test_labels == d)[:per_digit]
                          for d in NATURAL_FLIPS])
  pairs = np.array([[d, NATURAL_FLIPS[d]] for d in mnist.test_labels[index]])
  return to_float(mnist.test_images[index]), pairs
