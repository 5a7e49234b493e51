"""Metrics of a pairs file under the panel: readable rates, realism distances."""

import pathlib
from typing import Any

import numpy as np

from flipnum_jax import data
from flipnum_jax import exchange
from flipnum_jax.judges import frechet
from flipnum_jax.judges import knn
from flipnum_jax.judges import panel as panel_lib


def view_correct(probabilities: np.ndarray, pairs: np.ndarray) -> np.ndarray:
  """(2, N) booleans: the judge's top class is a upright (row 0), b turned (row 1)."""
  return probabilities.argmax(-1) == pairs.T


def view_target_probability(probabilities: np.ndarray, pairs: np.ndarray) -> np.ndarray:
  """(2, N): p(a | x) and p(b | rot180 x)."""
  index = np.arange(pairs.shape[0])
  return np.stack([probabilities[0, index, pairs[:, 0]], probabilities[1, index, pairs[:, 1]]])


def rates(correct: np.ndarray) -> dict[str, float]:
  return {'upright': float(correct[0].mean()), 'rotated': float(correct[1].mean()),
          'both': float((correct[0] & correct[1]).mean())}


def panel_correct(per_judge_correct: dict[str, np.ndarray],
                  veto_judge: str = '') -> np.ndarray:
  """(2, N) or (N,): a strict majority of the voting judges reads the intended digit
  in that view and, when `veto_judge` is named, that judge reads it too.

  With four voting judges of three families, a majority needs three, so no single
  judge or family decides. The veto judge (the open-set `judge_one_digit`) does not
  vote, so that adding it can only make the verdict stricter.
  """
  votes = [c for name, c in per_judge_correct.items() if name != veto_judge]
  verdict = np.sum(votes, axis=0) * 2 > len(votes)
  return verdict & per_judge_correct[veto_judge] if veto_judge else verdict


def generator_view(pairs_path: pathlib.Path) -> dict[str, float] | None:
  """The generating classifier's own rates, from `scores.json` beside the file, by
  the judges' criterion (the intended digit is its top class); None without a
  scores.json that records it (files written before it did)."""
  scores = exchange.read_scores(pairs_path.parent / exchange.SCORES_FILE)
  if scores is None:
    return None
  scores = scores['pairs']
  if not all('reads_upright' in p and 'reads_rotated' in p for p in scores):
    return None
  upright = np.array([p['p_upright'] for p in scores])
  rotated = np.array([p['p_rotated'] for p in scores])
  result = rates(np.stack([[p['reads_upright'] for p in scores],
                           [p['reads_rotated'] for p in scores]]))
  result['mean_min_prob'] = float(np.minimum(upright, rotated).mean())
  return result


def class_matched_sample(rng: np.random.Generator, labels: np.ndarray,
                         wanted: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
  """Indices of real digits with the labels `wanted`, one per entry, no repeats."""
  available = np.ones(len(labels), bool)
  if exclude is not None:
    available[exclude] = False
  chosen = np.empty(len(wanted), np.int64)
  for digit in np.unique(wanted):
    slots = np.flatnonzero(wanted == digit)
    pool = np.flatnonzero(available & (labels == digit))
    chosen[slots] = rng.choice(pool, len(slots), replace=False)
  return chosen


def floor_sized(rng: np.random.Generator, labels: np.ndarray,
                real_labels: np.ndarray) -> np.ndarray:
  """Indices of `labels` to score for realism: all of them, unless some digit has
  more than half as many as the real digits hold — the floor needs two disjoint
  class-matched real samples of the same size — in which case a random subset of
  that digit's images of half the real count."""
  counts = np.bincount(labels, minlength=10)
  caps = np.bincount(real_labels, minlength=10) // 2
  if np.all(counts <= caps):
    return np.arange(len(labels))
  return np.sort(np.concatenate([
      rng.choice(np.flatnonzero(labels == d), min(counts[d], caps[d]), replace=False)
      for d in range(10)]))


def realism(panel: panel_lib.Panel, feature_judge: str,
            views: dict[str, tuple[np.ndarray, np.ndarray]], mnist: data.Mnist,
            floor_repeats: int, real_distances: np.ndarray, seed: int) -> dict[str, Any]:
  """Per view (name → images and the digits they should read as): the Fréchet
  distance against class-matched real test digits, the real-vs-real floor on equal
  sample sizes, and distances to the nearest real digit."""
  rng = np.random.default_rng(seed)
  test_images = data.to_float(mnist.test_images)
  features = lambda x: panel_lib.penultimate_features(panel, feature_judge, x)
  threshold = float(np.percentile(real_distances, 99))
  result = {'feature_judge': feature_judge,
            'samples': len(next(iter(views.values()))[0]),
            'real_nn_distance_p99': threshold}
  for view, (view_images, labels) in views.items():
    scored = floor_sized(rng, labels, mnist.test_labels)
    result[f'{view}_frechet_samples'] = len(scored)
    real = class_matched_sample(rng, mnist.test_labels, labels[scored])
    result[view] = frechet.frechet_distance(features(view_images[scored]),
                                            features(test_images[real]))
    floors = []
    for _ in range(floor_repeats):
      first = class_matched_sample(rng, mnist.test_labels, labels[scored])
      second = class_matched_sample(rng, mnist.test_labels, labels[scored], exclude=first)
      floors.append(frechet.frechet_distance(features(test_images[first]),
                                             features(test_images[second])))
    result[f'{view}_floor'] = float(np.mean(floors))
    _, distances = knn.query(panel.neighbours, view_images, 1)
    result[f'{view}_nn_distance_median'] = float(np.median(distances))
    result[f'{view}_near_real'] = float(np.mean(distances <= threshold))
  return result


def pair_views(images: np.ndarray, pairs: np.ndarray
               ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """The two views of flip images, for `realism`: upright reads a, turned reads b."""
  return {'upright': (images, pairs[:, 0]), 'rotated': (images[:, ::-1, ::-1], pairs[:, 1])}
