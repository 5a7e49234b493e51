"""The nearest-neighbour judge: is there a real training digit that looks like this?"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from flipnum_jax import data


class NearestNeighbours(NamedTuple):
  """Real training digits, flattened (M, 784) float32, and their labels (M,)."""
  images: jax.Array
  labels: jax.Array


def from_mnist(mnist: data.Mnist, examples: int = 0) -> NearestNeighbours:
  images = mnist.train_images[:examples] if examples else mnist.train_images
  labels = mnist.train_labels[:examples] if examples else mnist.train_labels
  return NearestNeighbours(jnp.asarray(data.to_float(images).reshape(len(images), -1)),
                           jnp.asarray(labels))


@functools.partial(jax.jit, static_argnames=('k',))
def _neighbours(reference: NearestNeighbours, queries: jax.Array,
                k: int) -> tuple[jax.Array, jax.Array]:
  """Distances (N, k) to, and labels (N, k) of, the k nearest real digits."""
  flat = queries.reshape(queries.shape[0], -1)
  # ‖q − r‖² = ‖q‖² − 2 q·r + ‖r‖²: one matrix product instead of N×M differences.
  squared = (jnp.sum(flat ** 2, 1, keepdims=True) - 2 * flat @ reference.images.T
             + jnp.sum(reference.images ** 2, 1)[None])
  negative, index = jax.lax.top_k(-squared, k)
  return jnp.sqrt(jnp.maximum(-negative, 0.0)), reference.labels[index]


def query(reference: NearestNeighbours, images: np.ndarray, k: int,
          chunk: int = 500) -> tuple[np.ndarray, np.ndarray]:
  """Class probabilities (N, 10) — the share of the k neighbours with each label —
  and the distance (N,) to the nearest real digit, for images (N, 28, 28)."""
  probabilities, nearest = [], []
  for start in range(0, len(images), chunk):
    distances, labels = _neighbours(reference, jnp.asarray(images[start:start + chunk]), k)
    probabilities.append(np.asarray(jax.nn.one_hot(labels, 10).mean(1)))
    nearest.append(np.asarray(distances[:, 0]))
  return np.concatenate(probabilities), np.concatenate(nearest)
