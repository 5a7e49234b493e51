"""Batched gradient ascent on images: every image of a batch in one compiled call."""

import functools
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from flax import nnx

from flipnum_jax.errors import ConfigError

# objective(graphdef, params, image (28, 28), target, key) -> scalar to maximize.
Objective = Callable[[nnx.GraphDef, nnx.State, jax.Array, jax.Array, jax.Array],
                     jax.Array]


@functools.partial(jax.jit, static_argnames=('graphdef', 'objective', 'optimizer', 'steps'))
def ascend(graphdef: nnx.GraphDef, params: nnx.State, init_images: jax.Array,
           targets: jax.Array, keys: jax.Array, *, objective: Objective,
           optimizer: optax.GradientTransformation,
           steps: int) -> tuple[jax.Array, jax.Array]:
  """Maximizes `objective` for each (image, target, key), pixels kept in [0, 1].

  `keys` (N,) seed each image's random transformations, one split per step, so an
  image's result does not depend on what else is in the batch. Returns the final
  images (N, 28, 28) and the score before each step (steps, N).
  """

  def ascend_one(image, target, image_key):
    def step(carry, step_key):
      x, opt_state = carry
      negative_score = lambda x: -objective(graphdef, params, x, target, step_key)
      loss, grad = jax.value_and_grad(negative_score)(x)
      updates, opt_state = optimizer.update(grad, opt_state, x)
      x = jnp.clip(optax.apply_updates(x, updates), 0.0, 1.0)
      return (x, opt_state), -loss

    (image, _), scores = jax.lax.scan(step, (image, optimizer.init(image)),
                                      jax.random.split(image_key, steps))
    return image, scores

  images, scores = jax.vmap(ascend_one)(init_images, targets, keys)
  return images, scores.T


def normalized_sgd(learning_rate: float) -> optax.GradientTransformation:
  """Steps of fixed L2 length `learning_rate` along the gradient (per image, since
  `ascend` vmaps the optimizer over images): the step rule of robust-classifier
  image synthesis (Santurkar et al., 2019)."""
  normalize = optax.stateless(
      lambda updates, params: jax.tree.map(
          lambda u: u / (jnp.linalg.norm(u) + 1e-12), updates))
  return optax.chain(normalize, optax.sgd(learning_rate))


OPTIMIZERS = {'adam': optax.adam, 'sgd': optax.sgd, 'normalized_sgd': normalized_sgd}


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """The image optimizer of an ascent config (optimizer, learning_rate, steps)."""
  if config.optimizer not in OPTIMIZERS:
    raise ConfigError(f'ascent.optimizer must be one of {sorted(OPTIMIZERS)}, '
                      f'not {config.optimizer!r}')
  if not (np.isfinite(config.learning_rate) and config.learning_rate > 0):
    raise ConfigError(f'ascent.learning_rate must be finite and positive, not '
                      f'{config.learning_rate}')
  if config.steps <= 0:
    raise ConfigError(f'ascent.steps must be positive, not {config.steps}')
  return OPTIMIZERS[config.optimizer](config.learning_rate)


class AscentResult(NamedTuple):
  images: jax.Array
  scores: jax.Array
  compile_seconds: float
  run_seconds: float


def timed_ascend(graphdef: nnx.GraphDef, params: nnx.State, init_images: jax.Array,
                 targets: jax.Array, keys: jax.Array, *, objective: Objective,
                 optimizer: optax.GradientTransformation, steps: int) -> AscentResult:
  """`ascend`, compiled ahead of time so that compile and run times are separate."""
  start = time.perf_counter()
  compiled = ascend.lower(graphdef, params, init_images, targets, keys,
                          objective=objective, optimizer=optimizer, steps=steps).compile()
  compiled_at = time.perf_counter()
  images, scores = jax.block_until_ready(compiled(params, init_images, targets, keys))
  done = time.perf_counter()
  result = AscentResult(images, scores, compiled_at - start, done - compiled_at)
  logging.info('Ascent of %d images × %d steps: compile %.1f s, run %.1f s, '
               '%.0f image-steps/s.', init_images.shape[0], steps,
               result.compile_seconds, result.run_seconds,
               init_images.shape[0] * steps / result.run_seconds)
  return result
