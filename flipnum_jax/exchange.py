"""The files jobs exchange: pairs files (`pairs.npz`) and plain-sample files
(`samples.npz`), read and validated in one place for every job that reads them.

A pairs file holds `images` float32 (N, 28, 28) in [0, 1] (1 = ink) and `pairs` int
(N, 2): column 0 the digit read upright, column 1 the digit read after the 180° turn.
"""

import hashlib
import os
import pathlib

import numpy as np

from flipnum_jax.errors import ConfigError
from flipnum_jax.errors import DataError


def named_paths(spec: str, key: str) -> dict[str, pathlib.Path]:
  """name → path of each file in the comma-separated `spec`; the name is the
  folder holding it. `key` is the config key that named them (for errors)."""
  named = {}
  for path in [pathlib.Path(p.strip()) for p in spec.split(',') if p.strip()]:
    if not path.is_file():
      raise ConfigError(f'{key}: {path} does not exist (run its experiment first, or '
                        f'name files with --config.{key}=PATH[,PATH…])')
    name = path.parent.name or path.stem
    while name in named:
      name += "'"
    named[name] = path
  return named


def read_npz(path: pathlib.Path, keys: tuple[str, ...], what: str) -> list[np.ndarray]:
  """The arrays `keys` of the .npz file `path`, or a DataError naming it."""
  try:
    with np.load(path) as npz:
      missing = set(keys) - set(npz.files)
      if missing:
        raise DataError(f'{path} lacks the key(s) {sorted(missing)} of {what}')
      return [npz[key] for key in keys]
  except (OSError, ValueError) as e:
    raise DataError(f'{path} is not a readable .npz file ({e})') from None


def load_pairs_file(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
  """Images (N, 28, 28) float32 and pairs (N, 2) from an exchange-format file."""
  path = pathlib.Path(path)
  images, pairs = read_npz(path, ('images', 'pairs'), 'the pairs format')
  check_images_and_pairs(path, images, pairs)
  return images.astype(np.float32), pairs.astype(np.int64)


def check_images_and_pairs(path: pathlib.Path, images: np.ndarray,
                           pairs: np.ndarray) -> None:
  """A DataError naming `path` unless images and pairs follow the exchange format."""
  if images.ndim != 3 or images.shape[1:] != (28, 28):
    raise DataError(f'{path}: images must have shape (N, 28, 28), not {images.shape}')
  if pairs.shape != (len(images), 2) or not np.issubdtype(pairs.dtype, np.integer):
    raise DataError(f'{path}: pairs must be integers of shape ({len(images)}, 2), not '
                    f'{pairs.dtype} {pairs.shape}')
  if not np.issubdtype(images.dtype, np.floating) or not np.all(np.isfinite(images)) \
      or images.min() < 0.0 or images.max() > 1.0:
    raise DataError(f'{path}: images must be finite floats in [0, 1] (1 = ink)')
  if pairs.min() < 0 or pairs.max() > 9:
    raise DataError(f'{path}: pairs must be digits 0–9')


def load_samples_file(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
  """Images (N, 28, 28) float32 and labels (N,) of plain digits (`diffusion`'s
  samples.npz), checked as a pairs file whose both readings are the label."""
  path = pathlib.Path(path)
  images, labels = read_npz(path, ('images', 'labels'), 'a samples file')
  if labels.shape != images.shape[:1]:
    raise DataError(f'{path}: labels must have shape ({len(images)},), not {labels.shape}')
  check_images_and_pairs(path, images, np.stack([labels, labels], -1))
  return images.astype(np.float32), labels.astype(np.int64)


def images_hash(images: np.ndarray) -> str:
  """A SHA-256 of float32 images: the identity of a set of images in readings and
  reports, so that readings are never scored against other images."""
  return hashlib.sha256(np.ascontiguousarray(images, np.float32).tobytes()).hexdigest()
