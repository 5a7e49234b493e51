"""Batched gradient ascent on images: every image of a batch in one compiled call."""

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from flax import nnx

from flipnum_jax import timing
from flipnum_jax.errors import ConfigError

# objective(graphdef, params, image (28, 28), target, key) -> scalar to maximize.
Objective = Callable[[nnx.GraphDef, nnx.State, jax.Array, jax.Array, jax.Array],
                     jax.Array]


@functools.partial(jax.jit, static_argnames=('graphdef', 'objective', 'optimizer',
                                             'steps', 'decoder', 'prior_weight'))
def ascend(graphdef: nnx.GraphDef, params: nnx.State, init: jax.Array,
           targets: jax.Array, keys: jax.Array, decoder_params: nnx.State | None = None,
           *, objective: Objective, optimizer: optax.GradientTransformation, steps: int,
           decoder: nnx.GraphDef | None = None,
           prior_weight: float = 0.0) -> tuple[jax.Array, jax.Array]:
  """Maximizes `objective` for each (image, target, key).

  Without a decoder, `init` holds images (N, 28, 28) and the ascent moves pixels,
  kept in [0, 1]. With `decoder` (a VAE's graphdef, its weights in
  `decoder_params`), `init` holds latents (N, D), the image is the decoder's drawing
  of the latent, and `prior_weight`·½‖z‖² keeps latents where the prior has mass.
  `keys` (N,) seed each image's random transformations, one split per step, so an
  image's result does not depend on what else is in the batch. Returns the final
  images (N, 28, 28) and the score before each step (steps, N).
  """

  def render(variable):
    if decoder is None:
      return variable
    return nnx.merge(decoder, decoder_params).decode(variable[None])[0]

  def ascend_one(variable, target, image_key):
    def step(carry, step_key):
      v, opt_state = carry
      def negative_score(v):
        score = objective(graphdef, params, render(v), target, step_key)
        return -(score - 0.5 * prior_weight * jnp.sum(v ** 2))
      loss, grad = jax.value_and_grad(negative_score)(v)
      updates, opt_state = optimizer.update(grad, opt_state, v)
      v = optax.apply_updates(v, updates)
      if decoder is None:
        v = jnp.clip(v, 0.0, 1.0)
      return (v, opt_state), -loss

    (variable, _), scores = jax.lax.scan(step, (variable, optimizer.init(variable)),
                                         jax.random.split(image_key, steps))
    return render(variable), scores

  images, scores = jax.vmap(ascend_one)(init, targets, keys)
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
  seconds: timing.Seconds


def timed_ascend(graphdef: nnx.GraphDef, params: nnx.State, init: jax.Array,
                 targets: jax.Array, keys: jax.Array, decoder_params: nnx.State | None = None,
                 **static) -> AscentResult:
  """`ascend`, compiled ahead of time so that compile and run times are separate;
  `static` are its keyword-only arguments."""
  (images, scores), seconds = timing.compile_and_run(
      ascend, graphdef, params, init, targets, keys, decoder_params, **static)
  logging.info('Ascent of %d images × %d steps: compile %.1f s, run %.1f s, '
               '%.0f image-steps/s.', init.shape[0], static['steps'], seconds.compile,
               seconds.run, init.shape[0] * static['steps'] / seconds.run)
  return AscentResult(images, scores, seconds)
