"""The files jobs exchange, written and read (validated) here and nowhere else:
pairs files (`pairs.npz`), plain-sample files (`samples.npz`) and the generating
classifier's scores (`scores.json`).

A pairs file holds `images` float32 (N, 28, 28) in [0, 1] (1 = ink) and `pairs` int
(N, 2): column 0 the digit read upright, column 1 the digit read after the 180° turn;
grids are a-major (`all_pairs`). A samples file holds `images` and `labels` (N,).
`scores.json` holds, per pair, the generating classifier's p_upright, p_rotated, their
minimum and whether each reading is its top class, plus the generation's timing.
"""

import hashlib
import json
import os
import pathlib
from typing import Any

import numpy as np

from flipnum_jax import io
from flipnum_jax.errors import ConfigError
from flipnum_jax.errors import DataError

PAIRS_FILE = 'pairs.npz'
# Every candidate drawn, K consecutive per pair, in the pairs format: what a
# readability model's readings are taken on (never the chosen images).
CANDIDATES_FILE = 'candidates.npz'
SAMPLES_FILE = 'samples.npz'
SCORES_FILE = 'scores.json'


def all_pairs(upright: np.ndarray, rotated: np.ndarray) -> np.ndarray:
  """(len(upright) * len(rotated), 2) pairs in a-major order (row 10·a + b)."""
  return np.stack(np.meshgrid(upright, rotated, indexing='ij'), -1).reshape(-1, 2)


def write_pairs_file(path: str | os.PathLike, images: np.ndarray,
                     pairs: np.ndarray) -> None:
  """Writes a pairs file atomically, after checking it follows the format."""
  check_images_and_pairs(pathlib.Path(path), images, pairs)
  io.write_npz(path, images=images.astype(np.float32), pairs=pairs.astype(np.int64))


def write_scores(path: str | os.PathLike, summary: dict[str, Any]) -> None:
  io.write_json(path, summary)


def write_samples_file(path: str | os.PathLike, images: np.ndarray,
                       labels: np.ndarray) -> None:
  """Writes a samples file atomically, after checking it follows the format."""
  check_images_and_labels(pathlib.Path(path), images, labels)
  io.write_npz(path, images=images.astype(np.float32), labels=labels.astype(np.int64))


def scores_summary(pairs: np.ndarray, p_upright: np.ndarray, p_rotated: np.ndarray,
                   reads: np.ndarray, timing: dict[str, float],
                   spread: np.ndarray) -> dict[str, Any]:
  """The scores.json content: the generating classifier's view of each pair
  (`reads` (2, N): whether a and b are its top class), the mean of the weaker
  reading, the worst pair, how far apart each pair's candidates lie (`spread`,
  `generators.candidate_spread`) and the generation's timing."""
  minimum = np.minimum(p_upright, p_rotated)
  worst = int(np.argmin(minimum))
  return {
      'pairs': [{'upright': int(a), 'rotated': int(b), 'p_upright': float(pu),
                 'p_rotated': float(pr), 'min': float(m), 'reads_upright': bool(ru),
                 'reads_rotated': bool(rr), 'candidate_spread': float(d)}
                for (a, b), pu, pr, m, ru, rr, d in zip(
                    pairs, p_upright, p_rotated, minimum, reads[0], reads[1], spread)],
      'mean_min_confidence': float(minimum.mean()),
      'mean_candidate_spread': float(spread.mean()),
      'worst_pair': [int(pairs[worst, 0]), int(pairs[worst, 1])],
      'timing': timing,
  }


SCORE_KEYS = ('upright', 'rotated', 'p_upright', 'p_rotated', 'min')


def read_scores(path: str | os.PathLike) -> dict[str, Any] | None:
  """The scores.json at `path`, or None when there is none; a DataError when it is
  not one (unreadable, or pairs lacking the per-pair keys)."""
  path = pathlib.Path(path)
  if not path.is_file():
    return None
  try:
    scores = json.loads(path.read_text())
    if all(key in p for p in scores['pairs'] for key in SCORE_KEYS):
      return scores
  except (OSError, ValueError, KeyError, TypeError):
    pass
  raise DataError(f'{path} is not a scores file (per pair: {", ".join(SCORE_KEYS)})')


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
  check_images_and_labels(path, images, labels)
  return images.astype(np.float32), labels.astype(np.int64)


def check_images_and_labels(path: pathlib.Path, images: np.ndarray,
                            labels: np.ndarray) -> None:
  """A DataError naming `path` unless images and labels follow the samples format:
  a pairs file whose both readings are the label."""
  if labels.shape != images.shape[:1]:
    raise DataError(f'{path}: labels must have shape ({len(images)},), not {labels.shape}')
  check_images_and_pairs(path, images, np.stack([labels, labels], -1))


def images_hash(images: np.ndarray) -> str:
  """A SHA-256 of float32 images: the identity of a set of images in readings and
  reports, so that readings are never scored against other images."""
  return hashlib.sha256(np.ascontiguousarray(images, np.float32).tobytes()).hexdigest()
