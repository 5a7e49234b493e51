"""The flow generator: view-averaged sampling from the class-conditional
flow-matching model, with classifier guidance.

Flow matching (rectified flow): x_t = (1 − t)·x + t·ε for data x (in [−1, 1]) and
Gaussian noise ε; the network learns the velocity ε − x (`train.FlowMatchingLoss`).
Sampling integrates dx/dt = v from t = 1 (noise) to t = 0 (data) with Euler steps,
all images and all steps in one `lax.scan`. The pieces compose:
- classifier-free guidance (`guided_velocity`): from the unconditional velocity
  towards the conditional one, weight `guidance`;
- view averaging (`flip_velocity`, Visual Anagrams, Geng et al. 2024): the average
  of the guided velocity for (x, a) and the turned-back one for (rot180 x, b). A
  180° turn permutes pixels, so it keeps Gaussian noise Gaussian and the averaged
  field is a valid velocity for both views at once;
- classifier guidance (`sample_flips` with a guide): the gradient of the flip
  objective at the model's clean-image estimate, weight `classifier_weight`.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from flipnum_jax import io
from flipnum_jax import models
from flipnum_jax import objectives
from flipnum_jax import sharding
from flipnum_jax import timing
from flipnum_jax import train
from flipnum_jax import views
from flipnum_jax.errors import ConfigError
from flipnum_jax.generators import base

# How a pair's candidate is chosen: by the generating classifier only, or also by
# the flow model's typicality of both views (`flip_denoising_error`).
SELECTIONS = ('generator', 'denoising')


def default_config() -> ml_collections.ConfigDict:
  """View averaging as published: no classifier guidance."""
  return ml_collections.ConfigDict({
      'name': 'flow', 'model': train.flow_config(), 'steps': 40, 'guidance': 3.0,
      'classifier_weight': 0.0,  # weight of the classifier's gradient (0 = none)
      'select': 'generator'})


def check(config: ml_collections.ConfigDict) -> None:
  if config.steps < 1:
    raise ConfigError(f'generator.steps must be ≥ 1, not {config.steps}')
  if not (np.isfinite(config.guidance) and config.guidance >= 0):
    raise ConfigError(f'generator.guidance must be finite and ≥ 0, not {config.guidance}')
  if config.select not in SELECTIONS:
    raise ConfigError(f'generator.select must be one of {SELECTIONS}, not '
                      f'{config.select!r}')
  if not config.classifier_weight >= 0:
    raise ConfigError('generator.classifier_weight must be ≥ 0, not '
                      f'{config.classifier_weight}')


def velocity(graphdef: nnx.GraphDef, params: nnx.State, noisy: jax.Array,
             times: jax.Array, labels: jax.Array) -> jax.Array:
  """The network's velocity at noisy signals (N, 28, 28), times (N,), labels (N,)."""
  return nnx.merge(graphdef, params)(noisy, times, labels)


def guided_velocity(graphdef: nnx.GraphDef, params: nnx.State, noisy: jax.Array,
                    time: jax.Array, labels: jax.Array, guidance: jax.Array) -> jax.Array:
  """Classifier-free guided velocity, u + w·(c − u), for noisy signals (N, 28, 28)
  at one `time`; the conditional and unconditional passes share one batch."""
  n = noisy.shape[0]
  both = velocity(graphdef, params, jnp.concatenate([noisy, noisy]),
                  jnp.full((2 * n,), time), jnp.concatenate(
                      [labels, jnp.full_like(labels, models.NO_CLASS)]))
  conditional, unconditional = both[:n], both[n:]
  return unconditional + guidance * (conditional - unconditional)


def flip_velocity(graphdef: nnx.GraphDef, params: nnx.State, noisy: jax.Array,
                  time: jax.Array, pairs: jax.Array, guidance: jax.Array) -> jax.Array:
  """The view-averaged velocity: ½·(v(x | a) + rot180 v(rot180 x | b)) per pair
  (a, b) of `pairs` (N, 2); both views go through the network as one batch."""
  n = noisy.shape[0]
  v = guided_velocity(graphdef, params,
                      jnp.concatenate([noisy, views.rot180(noisy)]), time,
                      jnp.concatenate([pairs[:, 0], pairs[:, 1]]), guidance)
  return 0.5 * (v[:n] + views.rot180(v[n:]))


def integrate(step_velocity, noise: jax.Array, steps: int, key: jax.Array) -> jax.Array:
  """Images from `noise` by `steps` Euler steps of `step_velocity(signal, time,
  step_key)` from t = 1 to t = 0, in one `lax.scan`."""
  times = jnp.linspace(1.0, 0.0, steps + 1)

  def step(signal, inputs):
    time, next_time, step_key = inputs
    return signal + (next_time - time) * step_velocity(signal, time, step_key), None

  signal, _ = jax.lax.scan(step, noise, (times[:-1], times[1:],
                                         jax.random.split(key, steps)))
  return models.to_images(signal)


@functools.partial(jax.jit, static_argnames=('graphdef', 'steps'))
def sample_digits(graphdef: nnx.GraphDef, params: nnx.State, noise: jax.Array,
                  labels: jax.Array, key: jax.Array, guidance: jax.Array, *,
                  steps: int) -> jax.Array:
  """Plain digits (N, 28, 28) of `labels` (N,) from `noise` (N, 28, 28)."""
  return integrate(lambda signal, time, _: guided_velocity(
      graphdef, params, signal, time, labels, guidance), noise, steps, key)


@functools.partial(jax.jit, static_argnames=('graphdef', 'steps', 'classifier',
                                             'objective'))
def sample_flips(graphdef: nnx.GraphDef, params: nnx.State, noise: jax.Array,
                 pairs: jax.Array, key: jax.Array, guidance: jax.Array,
                 classifier_params: nnx.State | None = None,
                 classifier_weight: jax.Array = 0.0, *, steps: int,
                 classifier: nnx.GraphDef | None = None,
                 objective: objectives.FlipObjective | None = None) -> jax.Array:
  """Flip digits (N, 28, 28) for `pairs` (N, 2) of (a, b) from `noise` (N, 28, 28)
  with the view-averaged velocity. With a `classifier` (a generating classifier's
  graphdef; weights in `classifier_params`), every step also moves each image along
  the gradient of `objective` at the model's current estimate of the clean image,
  x̂ = x − t·v, scaled to unit RMS times `classifier_weight` (the gradient is not
  propagated through the network). `guidance` and `classifier_weight` are traced:
  trying another value does not recompile."""
  score_gradient = jax.vmap(jax.grad(objective, argnums=2),
                            in_axes=(None, None, 0, 0, 0)) if classifier is not None else None

  def step_velocity(signal, time, step_key):
    v = flip_velocity(graphdef, params, signal, time, pairs, guidance)
    if classifier is None:
      return v
    estimate = models.to_images(signal - time * v)
    gradient = score_gradient(classifier, classifier_params, estimate, pairs,
                              jax.random.split(step_key, signal.shape[0]))
    rms = jnp.sqrt(jnp.mean(gradient ** 2, axis=(1, 2), keepdims=True))
    # Euler steps go backwards in time, so subtracting from v adds to the image.
    return v - classifier_weight * gradient / (rms + 1e-12)

  return integrate(step_velocity, noise, steps, key)


@functools.partial(jax.jit, static_argnames=('graphdef',))
def flip_denoising_error(graphdef: nnx.GraphDef, params: nnx.State, images: jax.Array,
                         pairs: jax.Array, key: jax.Array) -> jax.Array:
  """(N, 2): the model's velocity error for each image as class a upright and as
  class b turned, averaged over noise levels t = 0.3, 0.5, 0.7 (one noise draw per
  level). Low error means the view is a typical digit of its class to the model
  that drew it: a generator-side check of realism (the diffusion-classifier idea,
  Li et al. 2023), not a judge's."""
  both = models.to_signal(jnp.concatenate([images, views.rot180(images)]))
  labels = jnp.concatenate([pairs[:, 0], pairs[:, 1]])
  errors = []
  for level, noise_key in zip((0.3, 0.5, 0.7), jax.random.split(key, 3)):
    noise = jax.random.normal(noise_key, both.shape)
    noisy = (1.0 - level) * both + level * noise
    predicted = velocity(graphdef, params, noisy, jnp.full(both.shape[:1], level), labels)
    errors.append(jnp.mean((predicted - (noise - both)) ** 2, axis=(1, 2)))
  return jnp.mean(jnp.stack(errors), 0).reshape(2, -1).T


def sampling_keys(key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The keys of the starting noise, of the sampler's steps and of the candidates'
  typicality check (`flip_denoising_error`), from one split so that no two share a
  key. (The check's key was once `fold_in(step_key, 1)`, which with partitionable
  threefry equals the second step's key, `split(step_key, steps)[1]`.)"""
  noise_key, step_key, typicality_key = jax.random.split(key, 3)
  return noise_key, step_key, typicality_key


def get_model(config: ml_collections.ConfigDict,
              workspace: io.Workspace) -> tuple[nnx.GraphDef, nnx.State]:
  """The flow model's graphdef and (EMA) weights: committed, cached or trained."""
  return nnx.split(train.get_model('flow', config, workspace)[0])


def draw(config: ml_collections.ConfigDict, candidate_pairs: np.ndarray,
         guide: base.Guide, workspace: io.Workspace, key: jax.Array) -> base.Drawn:
  """One view-averaged sample per candidate pair, all in one compiled scan split
  over all devices; classifier guidance by `guide` when classifier_weight > 0; the
  flow model's typicality of each view when select is 'denoising'."""
  graphdef, params = get_model(config.model, workspace)
  noise_key, step_key, typicality_key = sampling_keys(key)
  noise, pairs = sharding.shard_batch(
      jax.random.normal(noise_key, (len(candidate_pairs), 28, 28)),
      jnp.asarray(candidate_pairs))
  guided = (dict(classifier=guide.graphdef, objective=guide.objective)
            if config.classifier_weight else {})
  images, seconds = timing.compile_and_run(
      sample_flips, graphdef, params, noise, pairs, step_key,
      np.float32(config.guidance), guide.params if guided else None,
      np.float32(config.classifier_weight), steps=config.steps, **guided)
  logging.info('Drew %d flip candidates: compile %.1f s, %d steps in %.1f s.',
               len(candidate_pairs), seconds.compile, config.steps, seconds.run)
  typicality = (np.asarray(flip_denoising_error(graphdef, params, images, pairs,
                                                typicality_key))
                if config.select == 'denoising' else None)
  return base.Drawn(np.asarray(images), typicality, seconds, config.steps)
