"""MNIST loading and checks; nothing else in the kit reads MNIST files.

Two sources, in this order:
1. a folder with the four standard IDX files (`.gz` or uncompressed), named by the
   `data_dir` argument or the `FLIPNUM_DATA_DIR` environment variable, each checked
   against the published MD5 of its uncompressed bytes;
2. tensorflow-datasets, which downloads and prepares MNIST on first use. Preparing
   needs TensorFlow (`pip install -r requirements-tfds.txt`) and the internet.
A folder that is named but unusable is an error, never a silent fall-back.
"""

import gzip
import hashlib
import os
import pathlib
from typing import NamedTuple

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

_HOW_TO_GET = (
    'put the four MNIST IDX files (train-images-idx3-ubyte.gz, ...) in a folder and '
    f'set {DATA_DIR_ENV}=FOLDER or pass --data_dir=FOLDER, or let tensorflow-datasets '
    'download them (needs the internet and `pip install -r requirements-tfds.txt`)')


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
  except (OSError, EOFError, gzip.BadGzipFile) as e:
    raise DataError(f'{path} cannot be decompressed ({e}): it is truncated or '
                    'corrupt; download it again') from None
  if hashlib.md5(raw).hexdigest() != IDX_MD5[stem]:
    raise DataError(f'{path} does not match the published MD5 of {stem}: it is '
                    'truncated or corrupt; download it again')
  return parse_idx(raw, str(path))


def load_idx_folder(folder: str | os.PathLike) -> Mnist:
  """Reads and verifies the four IDX files in `folder`."""
  folder = pathlib.Path(folder)
  if not folder.is_dir():
    raise DataError(f'MNIST folder {folder} does not exist: {_HOW_TO_GET}')
  arrays = {stem: _read_verified(folder, stem) for stem in IDX_MD5}
  return Mnist(
      train_images=arrays['train-images-idx3-ubyte'],
      train_labels=arrays['train-labels-idx1-ubyte'].astype(np.int32),
      test_images=arrays['t10k-images-idx3-ubyte'],
      test_labels=arrays['t10k-labels-idx1-ubyte'].astype(np.int32))


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


def load_mnist(data_dir: str | None = None) -> Mnist:
  """MNIST from `data_dir`, else from $FLIPNUM_DATA_DIR, else tensorflow-datasets."""
  folder = data_dir or os.environ.get(DATA_DIR_ENV)
  if folder:
    return load_idx_folder(folder)
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
