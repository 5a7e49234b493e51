"""Pure objectives for image ascent: the 180° view and log-probability scores.

Every function takes the classifier as (graphdef, params) and one image (28, 28);
`jax.vmap` lifts them to batches.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from flipnum_jax import models


def rot180(images: jax.Array) -> jax.Array:
  """Turns images (..., 28, 28) by 180°: both spatial axes reversed."""
  return jnp.flip(images, axis=(-2, -1))


def view_log_probs(graphdef: nnx.GraphDef, params: nnx.State,
                   image: jax.Array) -> jax.Array:
  """Log-probabilities (2, 10) of `image` upright (row 0) and turned (row 1)."""
  views = jnp.stack([image, rot180(image)])  # one forward pass for both views
  return jax.nn.log_softmax(models.apply(graphdef, params, views))


def pair_score(graphdef: nnx.GraphDef, params: nnx.State, image: jax.Array,
               pair: jax.Array) -> jax.Array:
  """log p(a | x) + log p(b | rot180(x)) for pair = (a, b)."""
  log_probs = view_log_probs(graphdef, params, image)
  return log_probs[0, pair[0]] + log_probs[1, pair[1]]


def digit_score(graphdef: nnx.GraphDef, params: nnx.State, image: jax.Array,
                digit: jax.Array) -> jax.Array:
  """log p(digit | x)."""
  return jax.nn.log_softmax(models.apply(graphdef, params, image[None]))[0, digit]
