"""The flow generator: view-averaged sampling from the class-conditional
flow-matching model, with classifier guidance.

Flow matching (rectified flow): x_t = (1 − t)·x + t·ε for data x (in [−1, 1]) and
Gaussian noise ε; the network learns the velocity ε − x (`train.FlowMatchingLoss`).
Sampling integrates dx/dt = v from t = 1 (noise) to t = 0 (data) with Euler steps,
all images and all steps in one `lax.scan`. The pieces compose:
- classifier-free guidance (`guided_velocity`): from the unconditional velocity
  towards the conditional one, weight `guidance`; or, with `autoguidance`, from the
  conditional velocity of a weaker model (`weak_model`: smaller and trained less)
  towards the model's own, so that guidance moves away from the weak model's
  errors rather than towards what tells classes apart (Karras et al. 2024);
- view averaging (`flip_velocity`, Visual Anagrams, Geng et al. 2024): the average
  of the guided velocity for (x, a) and the turned-back one for (rot180 x, b). A
  180° turn permutes pixels, so it keeps Gaussian noise Gaussian and the averaged
  field is a valid velocity for both views at once;
- classifier guidance (`sample_flips` with a guide): the gradient of the flip
  objective at the model's clean-image estimate, weight `classifier_weight`. Its
  push carries every start of a pair to nearly one glyph (the K candidates of a
  pair, and those of other seeds, differ by little more than speckle), so
  `unpushed_per_pair` of each pair's candidates may be drawn without it: view
  averaging alone draws another layout from every start, which gives a chooser
  real alternatives;
- how the views combine (`combine`): their velocities averaged, or (after
  Anagram-MTL, Xu et al. 2024) their clean-image and noise estimates combined
  apart, the noise estimate's RMS restored (averaging two partly independent noise
  estimates shrinks it, which leaves grey, doubled strokes) and, with
  `view_weighting`, the view the generating classifier reads worse weighted more,
  α ∝ p^−(1 + step/30);
- a guidance interval: classifier-free guidance only at times in (lo, hi], plain
  conditional velocity elsewhere (Kynkäänniemi et al. 2024);
- a push interval: the classifier's push only at times in (lo, hi], so that below
  lo the flow model alone finishes the strokes and clears the speckle a
  non-robust guide's gradient leaves;
- resampling (sequential Monte Carlo, `resample_every` > 0): every few steps, among
  the candidates of the same pair, particles are drawn again in proportion to
  exp(log p(weaker view) / `resample_temperature`) under the generating classifier at
  their clean estimates, and every particle is renoised from its parent's estimate,
  so that search, not only pixel pushing, decides what survives;
- where sampling starts (`start_time` < 1): from real handwriting instead of pure
  noise — for each pair, a person's a averaged with a person's b turned whose ink
  lies nearest (`handwriting.nearest_flips`), noised to `start_time` and sampled
  from there (SDEdit, Meng et al. 2022), so that the strokes stay a person's;
- Langevin correctors (`corrector_steps` > 0): before each Euler step below t = 1,
  that many Langevin steps at the step's noise level on the score of the views'
  combined velocity (s = −ε̂/t with ε̂ = x + (1 − t)·v, the classifier's push
  included), step size from a signal-to-noise ratio (`corrector_snr`; the
  predictor–corrector sampler of Song et al. 2021). The averaged velocity of two
  views is not the probability flow of any one diffusion, so integrating it alone
  does not sample what both views agree on; MCMC at each level does (Du et al.
  2023, "Reduce, Reuse, Recycle": composition needs MCMC).
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from flipnum_jax import data
from flipnum_jax import io
from flipnum_jax import models
from flipnum_jax import objectives
from flipnum_jax import sharding
from flipnum_jax import timing
from flipnum_jax import train
from flipnum_jax import views
from flipnum_jax.errors import ConfigError
from flipnum_jax.generators import base
from flipnum_jax.generators import handwriting

# How a pair's candidate is chosen: by the generating classifier only, or also by
# the flow model's typicality of both views (`flip_denoising_error`).
SELECTIONS = ('generator', 'denoising')
# How the two views' predictions make one step (see the module docstring).
COMBINATIONS = ('velocity', 'clean')


def weak_model_config() -> ml_collections.ConfigDict:
  """The weak model of autoguidance: the flow model's U-Net at two thirds of its
  width, trained one epoch instead of five (Karras et al. 2024 degrade both)."""
  config = train.flow_config()
  config.name = 'diffusion_weak'
  config.model.features = 32
  config.epochs = 1
  return config


def default_config() -> ml_collections.ConfigDict:
  """View averaging as published: no classifier guidance."""
  return ml_collections.ConfigDict({
      'name': 'flow', 'model': train.flow_config(), 'steps': 40, 'guidance': 3.0,
      # guidance away from `weak_model`'s velocity instead of the unconditional one
      'autoguidance': False, 'weak_model': weak_model_config(),
      'classifier_weight': 0.0,  # weight of the classifier's gradient (0 = none)
      # the last this many candidates of each pair are drawn without that push
      'unpushed_per_pair': 0,
      'select': 'generator',
      'combine': 'velocity',  # or 'clean': estimates combined apart, noise RMS kept
      'view_weighting': False,  # with 'clean': weight the worse-read view more
      # classifier-free guidance only for times t in (lo, hi]; 1 = pure noise
      'guidance_interval': (0.0, 1.0),
      # the classifier's push only for times t in (lo, hi]: below lo the flow model
      # alone finishes the strokes (and clears the speckle a push leaves)
      'push_interval': (0.0, 1.0),
      'resample_every': 0,  # steps between resamplings of each pair's particles (0 = none)
      'resample_temperature': 1.0,
      # 1 = from pure noise; below 1, from real handwriting noised to this time
      'start_time': 1.0,
      'handwriting_per_class': 1000,  # training digits per class searched for starts
      'corrector_steps': 0,  # Langevin steps before each Euler step (0 = none)
      'corrector_snr': 0.2})  # their signal-to-noise ratio: step = 2·(snr·|z|/|s|)²


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
  if config.combine not in COMBINATIONS:
    raise ConfigError(f'generator.combine must be one of {COMBINATIONS}, not '
                      f'{config.combine!r}')
  if config.view_weighting and config.combine != 'clean':
    raise ConfigError("generator.view_weighting needs generator.combine='clean'")
  if config.unpushed_per_pair < 0:
    raise ConfigError('generator.unpushed_per_pair must be ≥ 0, not '
                      f'{config.unpushed_per_pair}')
  if config.resample_every < 0 or not config.resample_temperature > 0:
    raise ConfigError('generator.resample_every must be ≥ 0 and resample_temperature > 0, '
                      f'not {config.resample_every} and {config.resample_temperature}')
  if not 0.0 < config.start_time <= 1.0:
    raise ConfigError(f'generator.start_time must be in (0, 1], not {config.start_time}')
  if config.handwriting_per_class < 1:
    raise ConfigError('generator.handwriting_per_class must be ≥ 1, not '
                      f'{config.handwriting_per_class}')
  if config.corrector_steps < 0 or not config.corrector_snr > 0:
    raise ConfigError('generator.corrector_steps must be ≥ 0 and corrector_snr > 0, '
                      f'not {config.corrector_steps} and {config.corrector_snr}')
  if config.corrector_steps and config.combine != 'velocity':
    raise ConfigError("generator.corrector_steps needs generator.combine='velocity'")
  for name in ('guidance_interval', 'push_interval'):
    low, high = config[name]
    if not 0.0 <= low < high <= 1.0:
      raise ConfigError(f'generator.{name} must be (lo, hi) with 0 ≤ lo < hi ≤ 1, '
                        f'not {tuple(config[name])}')


def velocity(graphdef: nnx.GraphDef, params: nnx.State, noisy: jax.Array,
             times: jax.Array, labels: jax.Array) -> jax.Array:
  """The network's velocity at noisy signals (N, 28, 28), times (N,), labels (N,)."""
  return nnx.merge(graphdef, params)(noisy, times, labels)


def guided_velocity(graphdef: nnx.GraphDef, params: nnx.State, noisy: jax.Array,
                    time: jax.Array, labels: jax.Array, guidance: jax.Array,
                    weak_graphdef: nnx.GraphDef | None = None,
                    weak_params: nnx.State | None = None) -> jax.Array:
  """Guided velocity, u + w·(c − u), for noisy signals (N, 28, 28) at one `time`:
  c the conditional velocity and u the unconditional one (classifier-free guidance;
  the two passes share one batch) or, given a weak model, the weak model's
  conditional velocity (autoguidance)."""
  n = noisy.shape[0]
  times = jnp.full((n,), time)
  if weak_graphdef is not None:
    conditional = velocity(graphdef, params, noisy, times, labels)
    weak = velocity(weak_graphdef, weak_params, noisy, times, labels)
    return weak + guidance * (conditional - weak)
  both = velocity(graphdef, params, jnp.concatenate([noisy, noisy]),
                  jnp.concatenate([times, times]), jnp.concatenate(
                      [labels, jnp.full_like(labels, models.NO_CLASS)]))
  conditional, unconditional = both[:n], both[n:]
  return unconditional + guidance * (conditional - unconditional)


def view_velocities(graphdef: nnx.GraphDef, params: nnx.State, noisy: jax.Array,
                    time: jax.Array, pairs: jax.Array, guidance: jax.Array,
                    weak_graphdef: nnx.GraphDef | None = None,
                    weak_params: nnx.State | None = None) -> tuple[jax.Array, jax.Array]:
  """The guided velocities (`guided_velocity`) of both views, in the upright
  frame: v(x | a) and rot180 v(rot180 x | b) per pair (a, b) of `pairs` (N, 2);
  both views go through the network as one batch."""
  n = noisy.shape[0]
  v = guided_velocity(graphdef, params,
                      jnp.concatenate([noisy, views.rot180(noisy)]), time,
                      jnp.concatenate([pairs[:, 0], pairs[:, 1]]), guidance,
                      weak_graphdef, weak_params)
  return v[:n], views.rot180(v[n:])


def flip_velocity(graphdef: nnx.GraphDef, params: nnx.State, noisy: jax.Array,
                  time: jax.Array, pairs: jax.Array, guidance: jax.Array,
                  weak_graphdef: nnx.GraphDef | None = None,
                  weak_params: nnx.State | None = None) -> jax.Array:
  """The view-averaged velocity: ½·(v(x | a) + rot180 v(rot180 x | b))."""
  upright, turned = view_velocities(graphdef, params, noisy, time, pairs, guidance,
                                    weak_graphdef, weak_params)
  return 0.5 * (upright + turned)


def rms(images: jax.Array) -> jax.Array:
  """Each image's root mean square (..., 1, 1)."""
  return jnp.sqrt(jnp.mean(images ** 2, axis=(-2, -1), keepdims=True))


def objective_gradient(classifier: nnx.GraphDef, classifier_params: nnx.State,
                       objective: objectives.FlipObjective, images: jax.Array,
                       pairs: jax.Array, key: jax.Array) -> jax.Array:
  """The flip objective's gradient for each image (N, 28, 28), one key per image."""
  keys = jax.random.split(key, images.shape[0])
  return jax.vmap(jax.grad(objective, argnums=2), in_axes=(None, None, 0, 0, 0))(
      classifier, classifier_params, images, pairs, keys)


def clean_combination(noisy: jax.Array, time: jax.Array, next_time: jax.Array,
                      velocities: tuple[jax.Array, jax.Array],
                      weights: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The velocity, and the clean estimate x̂, whose Euler step from `time` to `next_time` lands where the
  views' combined estimates put the image: x̂ = Σ αᵢ x̂ᵢ and ε̂ = Σ αᵢ ε̂ᵢ (x̂ᵢ =
  x − t·vᵢ, ε̂ᵢ = x + (1 − t)·vᵢ), ε̂ rescaled to the α-weighted RMS of the ε̂ᵢ, then
  x' = (1 − t')·x̂ + t'·ε̂. `weights` (2, N) sum to 1 per image."""
  clean = [noisy - time * v for v in velocities]
  noise = [noisy + (1.0 - time) * v for v in velocities]
  alpha = weights[:, :, None, None]
  clean_estimate = alpha[0] * clean[0] + alpha[1] * clean[1]
  noise_estimate = alpha[0] * noise[0] + alpha[1] * noise[1]
  target_rms = alpha[0] * rms(noise[0]) + alpha[1] * rms(noise[1])
  noise_estimate = noise_estimate * target_rms / (rms(noise_estimate) + 1e-12)
  landing = (1.0 - next_time) * clean_estimate + next_time * noise_estimate
  return (landing - noisy) / (next_time - time), clean_estimate


def langevin_step(signal: jax.Array, score: jax.Array, noise: jax.Array,
                  snr: jax.Array) -> jax.Array:
  """One unadjusted Langevin step per image, x + η·s + √(2η)·z, with the step η =
  2·(snr·|z| / |s|)² set per image from the signal-to-noise ratio `snr` (the
  corrector of Song et al. 2021), so that it scales with the noise level by itself."""
  size = 2.0 * (snr * rms(noise) / (rms(score) + 1e-12)) ** 2
  return signal + size * score + jnp.sqrt(2.0 * size) * noise


def integrate(step_velocity, start: jax.Array, steps: int, key: jax.Array,
              start_time: jax.Array = 1.0) -> jax.Array:
  """Images from the signal `start` at `start_time` (1: pure noise) by `steps` Euler
  steps of `step_velocity(signal, step_index, time, next_time, step_key)` to t = 0,
  in one `lax.scan` that logs its progress (`timing.log_progress`)."""
  times = jnp.linspace(start_time, 0.0, steps + 1)

  def step(signal, inputs):
    index, time, next_time, step_key = inputs
    timing.log_progress('flow sampler', index, steps, signal)
    velocity_now = step_velocity(signal, index, time, next_time, step_key)
    return signal + (next_time - time) * velocity_now, None

  signal, _ = jax.lax.scan(step, start, (jnp.arange(steps), times[:-1], times[1:],
                                         jax.random.split(key, steps)))
  timing.log_progress('flow sampler', jnp.asarray(steps), steps, signal)
  return models.to_images(signal)


@functools.partial(jax.jit, static_argnames=('graphdef', 'steps'))
def sample_digits(graphdef: nnx.GraphDef, params: nnx.State, noise: jax.Array,
                  labels: jax.Array, key: jax.Array, guidance: jax.Array, *,
                  steps: int) -> jax.Array:
  """Plain digits (N, 28, 28) of `labels` (N,) from `noise` (N, 28, 28)."""
  return integrate(lambda signal, _, time, next_time, __: guided_velocity(
      graphdef, params, signal, time, labels, guidance), noise, steps, key)


def resampling_groups(candidate_pairs: np.ndarray) -> np.ndarray:
  """(3, N) int32: for each particle, its group (a run of equal consecutive rows of
  `candidate_pairs`: one pair's candidates), its rank in the group and the group's
  size — what `resample` needs to draw parents within groups."""
  starts = np.r_[True, np.any(candidate_pairs[1:] != candidate_pairs[:-1], axis=1)]
  group = np.cumsum(starts) - 1
  first = np.flatnonzero(starts)
  rank = np.arange(len(candidate_pairs)) - first[group]
  size = np.diff(np.r_[first, len(candidate_pairs)])[group]
  return np.stack([group, rank, size]).astype(np.int32)


def resample(key: jax.Array, log_weights: jax.Array, groups: jax.Array) -> jax.Array:
  """Parent indices (N,): systematic resampling within each group (`groups` from
  `resampling_groups`) in proportion to exp(`log_weights`). Each group's normalized
  weights fill (g, g + 1] of one cumulative sum, so one `searchsorted` serves all."""
  group, rank, size = groups
  count = log_weights.shape[0]
  shifted = log_weights - jax.ops.segment_max(log_weights, group, count)[group]
  weights = jnp.exp(shifted)
  weights = weights / jax.ops.segment_sum(weights, group, count)[group]
  offsets = jax.random.uniform(key, (count,))[group]  # one uniform per group
  positions = group + (offsets + rank) / size
  parents = jnp.searchsorted(jnp.cumsum(weights), positions)
  return jnp.clip(parents, 0, count - 1)


def within(interval: jax.Array, time: jax.Array) -> jax.Array:
  """Whether `time` lies in the (lo, hi] `interval` (guidance and push intervals)."""
  return (time > interval[0]) & (time <= interval[1])


@functools.partial(jax.jit, static_argnames=('graphdef', 'steps', 'classifier',
                                             'objective', 'combine', 'view_weighting',
                                             'resample_every', 'corrector_steps',
                                             'weak_graphdef'))
def sample_flips(graphdef: nnx.GraphDef, params: nnx.State, noise: jax.Array,
                 pairs: jax.Array, key: jax.Array, guidance: jax.Array,
                 classifier_params: nnx.State | None = None,
                 classifier_weight: jax.Array = 0.0,
                 guidance_interval: jax.Array = (0.0, 1.0),
                 push_interval: jax.Array = (0.0, 1.0),
                 groups: jax.Array | None = None, resample_temperature: jax.Array = 1.0,
                 start_time: jax.Array = 1.0, corrector_snr: jax.Array = 0.2,
                 weak_params: nnx.State | None = None, *, steps: int,
                 classifier: nnx.GraphDef | None = None,
                 objective: objectives.FlipObjective | None = None,
                 combine: str = 'velocity', view_weighting: bool = False,
                 resample_every: int = 0, corrector_steps: int = 0,
                 weak_graphdef: nnx.GraphDef | None = None) -> jax.Array:
  """Flip digits (N, 28, 28) for `pairs` (N, 2) of (a, b) from `noise` (N, 28, 28),
  the signal at `start_time` (1: pure noise), with the view-averaged velocity. With a `classifier` (a generating classifier's
  graphdef; weights in `classifier_params`), every step also moves each image along
  the gradient of `objective` at the model's current estimate of the clean image,
  x̂ = x − t·v, scaled to unit RMS times `classifier_weight` (one for all images,
  or one each; the gradient is not propagated through the network). `combine` and
  `view_weighting` choose how the views make one step (module docstring; view
  weighting reads the views with the classifier). With `resample_every` > 0, every
  that many steps the particles are resampled within `groups` (`resampling_groups`)
  by the classifier's reading of their weaker view and renoised (module docstring). With `corrector_steps` > 0 (and
  the velocity combination), every step below t = 1 starts with that many Langevin
  steps at its noise level (module docstring) of signal-to-noise ratio
  `corrector_snr`. With a `weak_graphdef` (weights in `weak_params`), guidance is
  autoguidance by that weak model (`guided_velocity`) instead of classifier-free.
  The push acts only at times in `push_interval` (lo, hi].
  `guidance`, `classifier_weight`, `guidance_interval` (lo, hi), `push_interval`,
  `resample_temperature`, `start_time` and `corrector_snr` are traced: trying
  another value does not recompile."""
  guided = classifier is not None and objective is not None
  classifier_weight = jnp.broadcast_to(classifier_weight, noise.shape[:1])[:, None, None]

  def push_at(time):
    return jnp.where(within(push_interval, time), classifier_weight, 0.0)

  def clean_gradient(clean, key):
    """The flip objective's gradient at the clean estimate, and its RMS per image."""
    gradient = objective_gradient(classifier, classifier_params, objective,
                                  models.to_images(clean), pairs, key)
    return gradient, rms(gradient)

  def resampled_velocity(signal, clean, time, next_time, key):
    """The velocity that lands each particle, resampled and renoised, at next_time."""
    select_key, noise_key = jax.random.split(key)
    read = objectives.pair_log_probs(classifier, classifier_params,
                                     models.to_images(clean), pairs)
    parents = resample(select_key, read.min(1) / resample_temperature, groups)
    landing = ((1.0 - next_time) * clean[parents]
               + next_time * jax.random.normal(noise_key, signal.shape))
    return (landing - signal) / (next_time - time)

  def guidance_at(time):
    return jnp.where(within(guidance_interval, time), guidance, 1.0)

  def langevin(time, signal, key):
    """One Langevin step at `time` on the score of the pushed, averaged velocity."""
    noise_key, push_key = jax.random.split(key)
    v = flip_velocity(graphdef, params, signal, time, pairs, guidance_at(time),
                      weak_graphdef, weak_params)
    if guided:
      gradient, gradient_rms = clean_gradient(signal - time * v, push_key)
      v = v - push_at(time) * gradient / (gradient_rms + 1e-12)
    score = -(signal + (1.0 - time) * v) / time  # −ε̂/t
    return langevin_step(signal, score, jax.random.normal(noise_key, signal.shape),
                         corrector_snr)

  def corrected(signal, time, key):
    """`corrector_steps` Langevin steps at `time`; none at pure noise (t = 1),
    which is already what both views agree on."""
    def scan_langevin(signal):
      return jax.lax.scan(lambda x, k: (langevin(time, x, k), None), signal,
                          jax.random.split(key, corrector_steps))[0]
    return jax.lax.cond(time < 1.0, scan_langevin, lambda x: x, signal)

  def step_velocity(signal, index, time, next_time, step_key):
    resample_key = None
    if resample_every:  # one key for the objective's draws, one for resampling
      step_key, resample_key = jax.random.split(step_key)
    if not corrector_steps:
      return predicted_velocity(signal, index, time, next_time, step_key, resample_key)
    # One more key for the correctors; the Euler step starts where they end, so
    # the velocity returned also carries their move.
    step_key, corrector_key = jax.random.split(step_key)
    start = corrected(signal, time, corrector_key)
    return ((start - signal) / (next_time - time)
            + predicted_velocity(start, index, time, next_time, step_key, resample_key))

  def predicted_velocity(signal, index, time, next_time, step_key, resample_key):
    weight = guidance_at(time)
    if combine == 'velocity':
      v = flip_velocity(graphdef, params, signal, time, pairs, weight, weak_graphdef,
                        weak_params)
      clean = signal - time * v
    else:
      velocities = view_velocities(graphdef, params, signal, time, pairs, weight,
                                   weak_graphdef, weak_params)
      weights = jnp.full((2, signal.shape[0]), 0.5)
      if view_weighting:  # the view read worse (at the even estimate) weighs more
        even = models.to_images(signal - time * 0.5 * (velocities[0] + velocities[1]))
        read = jnp.exp(objectives.pair_log_probs(classifier, classifier_params, even,
                                                 pairs)).T
        weights = jnp.maximum(read, 1e-6) ** -(1.0 + index / 30.0)
        weights = weights / weights.sum(0, keepdims=True)
      v, clean = clean_combination(signal, time, next_time, velocities, weights)
    push = push_at(time)
    if resample_every:
      due = (index > 0) & (jnp.mod(index, resample_every) == 0)
      v = jnp.where(due, resampled_velocity(signal, clean, time, next_time, resample_key),
                    v)
      push = jnp.where(due, 0.0, push)  # the gradient belongs to the particle before
    if not guided:
      return v
    gradient, gradient_rms = clean_gradient(clean, step_key)
    # Euler steps go backwards in time, so subtracting from v adds to the image.
    return v - push * gradient / (gradient_rms + 1e-12)

  return integrate(step_velocity, noise, steps, key, start_time)


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


def handwriting_starts(candidate_pairs: np.ndarray, mnist: data.Mnist, per_class: int,
                       noise: jax.Array, start_time: float) -> jax.Array:
  """The signals at `start_time` to sample from: each pair's k-th candidate starts
  from the pair's k-th nearest handwriting start (`handwriting.nearest_flips`),
  noised as the flow's forward process would, (1 − t)·x + t·ε."""
  group, rank, _ = resampling_groups(candidate_pairs)
  count = int(rank.max()) + 1
  if per_class < count:
    raise ConfigError(f'generator.handwriting_per_class ({per_class}) must be at least '
                      f'the candidates per pair ({count})')
  starts = handwriting.nearest_flips(
      jnp.asarray(handwriting.class_pools(mnist, per_class)),
      jnp.asarray(candidate_pairs[rank == 0]), count=count)
  return ((1.0 - start_time) * models.to_signal(starts[group, rank])
          + start_time * noise)


def classifier_weights(candidate_pairs: np.ndarray, weight: float,
                       unpushed_per_pair: int) -> np.ndarray:
  """(N,) float32: the classifier's weight for each candidate, `weight` but 0 for
  the last `unpushed_per_pair` candidates of each pair (consecutive equal rows of
  `candidate_pairs`); a ConfigError if a pair has fewer candidates than that."""
  _, rank, size = resampling_groups(candidate_pairs)
  if unpushed_per_pair > size.min():
    raise ConfigError(f'generator.unpushed_per_pair ({unpushed_per_pair}) must be at '
                      f'most the candidates per pair ({size.min()})')
  return np.where(rank < size - unpushed_per_pair, weight, 0.0).astype(np.float32)


def get_model(config: ml_collections.ConfigDict,
              workspace: io.Workspace) -> tuple[nnx.GraphDef, nnx.State]:
  """The flow model's graphdef and (EMA) weights: committed, cached or trained."""
  return nnx.split(train.get_model('flow', config, workspace)[0])


def draw(config: ml_collections.ConfigDict, candidate_pairs: np.ndarray,
         guide: base.Guide, workspace: io.Workspace, key: jax.Array) -> base.Drawn:
  """One view-averaged sample per candidate pair, all in one compiled scan split
  over all devices; classifier guidance by `guide` when classifier_weight > 0,
  except for each pair's last `unpushed_per_pair` candidates;
  autoguidance by `weak_model` when `autoguidance`; the flow model's typicality of
  each view when select is 'denoising'."""
  push_weights = classifier_weights(candidate_pairs, config.classifier_weight,
                                    config.unpushed_per_pair)
  graphdef, params = get_model(config.model, workspace)
  weak_graphdef, weak_params = (get_model(config.weak_model, workspace)
                                if config.autoguidance else (None, None))
  noise_key, step_key, typicality_key = sampling_keys(key)
  start = jax.random.normal(noise_key, (len(candidate_pairs), 28, 28))
  if config.start_time < 1.0:
    start = handwriting_starts(candidate_pairs, workspace.mnist,
                               config.handwriting_per_class, start, config.start_time)
  start, pairs, push_weights = sharding.shard_batch(
      start, jnp.asarray(candidate_pairs), jnp.asarray(push_weights))
  uses_classifier = (config.classifier_weight or config.view_weighting
                     or config.resample_every)
  guided = dict(
      classifier=guide.graphdef if uses_classifier else None,
      objective=guide.objective if config.classifier_weight else None,
      combine=config.combine, view_weighting=config.view_weighting,
      resample_every=config.resample_every, corrector_steps=config.corrector_steps,
      weak_graphdef=weak_graphdef)
  groups = (jnp.asarray(resampling_groups(candidate_pairs)) if config.resample_every
            else None)
  images, seconds = timing.compile_and_run(
      sample_flips, graphdef, params, start, pairs, step_key,
      np.float32(config.guidance), guide.params if uses_classifier else None,
      push_weights, np.asarray(config.guidance_interval, np.float32),
      np.asarray(config.push_interval, np.float32), groups,
      np.float32(config.resample_temperature), np.float32(config.start_time),
      np.float32(config.corrector_snr), weak_params, steps=config.steps, **guided)
  logging.info('Drew %d flip candidates: compile %.1f s, %d steps in %.1f s.',
               len(candidate_pairs), seconds.compile, config.steps, seconds.run)
  typicality = (sharding.to_host(flip_denoising_error(graphdef, params, images, pairs,
                                                      typicality_key))
                if config.select == 'denoising' else None)
  return base.Drawn(sharding.to_host(images), typicality, seconds, config.steps)
