"""The ascent generator: gradient ascent on the image (or on a decoder's latent,
see `prior`) so that the generating classifier reads a upright and b turned — the
blog's method and its refinements. Every candidate in one compiled call."""

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from flax import nnx

from flipnum_jax import data
from flipnum_jax import io
from flipnum_jax import sharding
from flipnum_jax import timing
from flipnum_jax.errors import ConfigError
from flipnum_jax.generators import base

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


def default_config() -> ml_collections.ConfigDict:
  """The blog's ascent: Adam on the pixels from the MNIST mean."""
  return ml_collections.ConfigDict({
      'name': 'ascent',
      # Start: 'mean' (the MNIST mean image), 'noise' (uniform), 'class_blend' (mean
      # of a + turned mean of b) or 'example_blend' (a real a over a real b, turned).
      'init': 'mean', 'optimizer': 'adam', 'learning_rate': 0.01, 'steps': 300})


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """The optimizer of an ascent config (optimizer, learning_rate, steps)."""
  if config.optimizer not in OPTIMIZERS:
    raise ConfigError(f'optimizer must be one of {sorted(OPTIMIZERS)}, '
                      f'not {config.optimizer!r}')
  if not (np.isfinite(config.learning_rate) and config.learning_rate > 0):
    raise ConfigError(f'learning_rate must be finite and positive, not '
                      f'{config.learning_rate}')
  if config.steps <= 0:
    raise ConfigError(f'steps must be positive, not {config.steps}')
  return OPTIMIZERS[config.optimizer](config.learning_rate)


def _mean_image(pairs: np.ndarray, mnist: data.Mnist, key: jax.Array) -> jax.Array:
  del key  # deterministic
  mean = data.to_float(mnist.train_images).mean(0)
  return jnp.broadcast_to(jnp.asarray(mean), (len(pairs), 28, 28))


def _uniform_noise(pairs: np.ndarray, mnist: data.Mnist, key: jax.Array) -> jax.Array:
  del mnist  # data-free
  return jax.random.uniform(key, (len(pairs), 28, 28))


def _class_blend(pairs: np.ndarray, mnist: data.Mnist, key: jax.Array) -> jax.Array:
  """Half the mean of class a plus half the turned mean of class b, lightly noised."""
  images = data.to_float(mnist.train_images)
  means = np.stack([images[mnist.train_labels == d].mean(0) for d in range(10)])
  blend = 0.5 * (means[pairs[:, 0]] + means[pairs[:, 1]][:, ::-1, ::-1])
  return jnp.clip(blend + 0.1 * jax.random.normal(key, blend.shape), 0.0, 1.0)


def _example_blend(pairs: np.ndarray, mnist: data.Mnist, key: jax.Array) -> jax.Array:
  """A random real a overlaid on a random real b turned 180° (max of the two inks)."""
  images = data.to_float(mnist.train_images)
  by_class = [np.flatnonzero(mnist.train_labels == d) for d in range(10)]
  rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel())
  upright = images[[rng.choice(by_class[a]) for a in pairs[:, 0]]]
  turned = images[[rng.choice(by_class[b]) for b in pairs[:, 1]]][:, ::-1, ::-1]
  return jnp.asarray(np.maximum(upright, turned))


# Starting images: init name → function(pairs, mnist, key).
INITS = {'mean': _mean_image, 'noise': _uniform_noise, 'class_blend': _class_blend,
         'example_blend': _example_blend}


def init_function(kind: str):
  """The starting-image function called `kind`, or a ConfigError."""
  if kind not in INITS:
    raise ConfigError(f'generator.init must be one of {sorted(INITS)}, not {kind!r}')
  return INITS[kind]


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


def check(config: ml_collections.ConfigDict) -> None:
  make_optimizer(config)
  init_function(config.init)


def ascend_candidates(config: ml_collections.ConfigDict, start: jax.Array,
                      candidate_pairs: np.ndarray, guide: base.Guide, key: jax.Array,
                      decoder: tuple[nnx.GraphDef, nnx.State] | None = None,
                      prior_weight: float = 0.0) -> base.Drawn:
  """`ascend` on every candidate from `start` (images, or latents of `decoder`),
  split over all devices, one key per candidate."""
  start, targets, keys = sharding.shard_batch(
      jnp.asarray(start), jnp.asarray(candidate_pairs),
      jax.random.split(key, len(candidate_pairs)))
  latent = dict(decoder=decoder[0], prior_weight=prior_weight) if decoder else {}
  result = timed_ascend(guide.graphdef, guide.params, start, targets, keys,
                        decoder[1] if decoder else None, objective=guide.objective,
                        optimizer=make_optimizer(config), steps=config.steps, **latent)
  return base.Drawn(sharding.to_host(result.images), None, result.seconds, config.steps)


def draw(config: ml_collections.ConfigDict, candidate_pairs: np.ndarray,
         guide: base.Guide, workspace: io.Workspace, key: jax.Array) -> base.Drawn:
  """One image per candidate pair by ascent on the pixels from `config.init`."""
  init_key, ascent_key = jax.random.split(key)
  start = init_function(config.init)(candidate_pairs, workspace.mnist, init_key)
  return ascend_candidates(config, start, candidate_pairs, guide, ascent_key)
