"""A class-conditional flow-matching model of MNIST digits, and its samplers.

Flow matching (rectified flow): x_t = (1 − t)·x + t·ε for data x (scaled to [−1, 1])
and Gaussian noise ε; the network learns the velocity ε − x. Sampling integrates
dx/dt = v from t = 1 (noise) to t = 0 (data) with Euler steps, all images of a
batch and all steps in one `lax.scan`. Classifier-free guidance: labels are dropped
to the "no class" token during training, and sampling extrapolates from the
unconditional velocity towards the conditional one.

Flip sampling (Visual Anagrams, Geng et al. 2024): at every step the velocity is
the average of the model's guided velocity for (x, a) and the turned-back velocity
for (rot180 x, b). A 180° turn permutes pixels, so it keeps Gaussian noise Gaussian
and the averaged field is a valid velocity for both views at once.
"""

import functools
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from flax import nnx

from flipnum_jax import checkpoints
from flipnum_jax import data
from flipnum_jax import io
from flipnum_jax import models
from flipnum_jax import objectives
from flipnum_jax import views
from flipnum_jax import plots
from flipnum_jax import sharding
from flipnum_jax import timing
from flipnum_jax import train
from flipnum_jax.errors import ConfigError, TrainingError

NO_CLASS = 10  # the label classifier-free guidance uses for "any digit"
# How a pair's best candidate is chosen (see `candidate_scores`).
SELECTIONS = ('generator', 'denoising')


def to_signal(images: jax.Array) -> jax.Array:
  """Images in [0, 1] → the model's data space [−1, 1]."""
  return 2.0 * images - 1.0


def to_images(signal: jax.Array) -> jax.Array:
  return jnp.clip((signal + 1.0) / 2.0, 0.0, 1.0)


def velocity(graphdef: nnx.GraphDef, params: nnx.State, noisy: jax.Array,
             times: jax.Array, labels: jax.Array) -> jax.Array:
  """The network's velocity at noisy signals (N, 28, 28), times (N,), labels (N,)."""
  return nnx.merge(graphdef, params)(noisy, times, labels)


def flow_matching_loss(graphdef: nnx.GraphDef, params: nnx.State, images: jax.Array,
                       labels: jax.Array, key: jax.Array,
                       label_dropout: float) -> jax.Array:
  """Mean squared error of the predicted velocity at random times and noise."""
  noise_key, time_key, drop_key = jax.random.split(key, 3)
  signal = to_signal(images)
  noise = jax.random.normal(noise_key, signal.shape)
  times = jax.random.uniform(time_key, (signal.shape[0],))
  labels = jnp.where(jax.random.bernoulli(drop_key, label_dropout, labels.shape),
                     NO_CLASS, labels)
  noisy = (1.0 - times[:, None, None]) * signal + times[:, None, None] * noise
  predicted = velocity(graphdef, params, noisy, times, labels)
  return jnp.mean((predicted - (noise - signal)) ** 2)


@functools.partial(jax.jit, static_argnames=('graphdef', 'optimizer', 'label_dropout',
                                             'ema_decay'),
                   donate_argnames=('params', 'ema_params', 'opt_state'))
def diffusion_step(graphdef: nnx.GraphDef, optimizer: optax.GradientTransformation,
                   params: nnx.State, ema_params: nnx.State, opt_state: optax.OptState,
                   images: jax.Array, labels: jax.Array, batch: jax.Array, key: jax.Array,
                   *, label_dropout: float, ema_decay: float,
                   ) -> tuple[nnx.State, nnx.State, optax.OptState, jax.Array]:
  """One optimizer step on the examples `batch` indexes; also updates the
  exponential moving average of the weights, which is what sampling uses."""
  loss, grads = jax.value_and_grad(flow_matching_loss, argnums=1)(
      graphdef, params, images[batch], labels[batch], key, label_dropout)
  updates, opt_state = optimizer.update(grads, opt_state, params)
  params = optax.apply_updates(params, updates)
  ema_params = jax.tree.map(lambda e, p: ema_decay * e + (1.0 - ema_decay) * p,
                            ema_params, params)
  return params, ema_params, opt_state, loss


def train_diffusion(config: ml_collections.ConfigDict,
                    mnist: data.Mnist) -> tuple[models.UNet, dict[str, Any]]:
  """Trains the model on the (upright) training digits; returns its EMA weights."""
  init_key, data_key = jax.random.split(jax.random.key(config.seed))
  graphdef, params = nnx.split(models.make_unet(config.model, init_key))
  ema_params = jax.tree.map(jnp.copy, params)
  count = config.train_examples or mnist.train_images.shape[0]
  images = jnp.asarray(data.to_float(mnist.train_images[:count]))
  labels = jnp.asarray(mnist.train_labels[:count])
  steps_per_epoch = count // config.batch_size
  optimizer = train.make_optimizer(config, config.epochs * steps_per_epoch)
  opt_state = optimizer.init(params)
  logging.info('Training %s: %d parameters, %d epochs of %d steps (batch %d).',
               config.name, models.num_params(params), config.epochs, steps_per_epoch,
               config.batch_size)
  start = time.perf_counter()
  for epoch, epoch_key in enumerate(jax.random.split(data_key, config.epochs), 1):
    losses = []
    for step, (batch, step_key) in enumerate(
        zip(*train.epoch_batches(epoch_key, count, config.batch_size)), 1):
      params, ema_params, opt_state, loss = diffusion_step(
          graphdef, optimizer, params, ema_params, opt_state, images, labels, batch,
          step_key, label_dropout=config.label_dropout, ema_decay=config.ema_decay)
      losses.append(loss)
      if step % config.log_every == 0:  # the only host round-trip: a progress line
        recent = float(np.mean(np.asarray(losses[-config.log_every:])))
        if not np.isfinite(recent):
          raise TrainingError(f'training {config.name} diverged at epoch {epoch}, step '
                              f'{step}: the loss became non-finite; lower '
                              'diffusion.learning_rate')
        done = (epoch - 1) * steps_per_epoch + step
        elapsed = time.perf_counter() - start
        logging.info('%s epoch %d/%d step %d/%d  loss %.4f  %.1f steps/s  ETA %.0fs',
                     config.name, epoch, config.epochs, step, steps_per_epoch, recent,
                     done / elapsed,
                     elapsed / done * (config.epochs * steps_per_epoch - done))
    mean_loss = float(np.mean(np.asarray(losses)))
    if not np.isfinite(mean_loss):
      raise TrainingError(f'training {config.name} diverged in epoch {epoch}: the loss '
                          'became non-finite; lower diffusion.learning_rate')
    logging.info('%s epoch %d/%d  loss %.4f', config.name, epoch, config.epochs, mean_loss)
  metrics = {'final_train_loss': mean_loss, 'train_seconds': time.perf_counter() - start,
             'num_params': models.num_params(params), 'epochs': config.epochs}
  return nnx.merge(graphdef, ema_params), metrics


def get_diffusion(config: ml_collections.ConfigDict, workdir: str,
                  data_dir: str | None) -> tuple[models.UNet, dict[str, Any]]:
  """The model `config` describes: loaded from the workdir, or trained and saved."""
  return checkpoints.load_or_train(
      io.model_dir(workdir, config.name), config,
      lambda: models.make_unet(config.model, jax.random.key(0)),
      lambda: train_diffusion(config, data.load_mnist(data_dir)))


def guided_velocity(graphdef: nnx.GraphDef, params: nnx.State, noisy: jax.Array,
                    time: jax.Array, labels: jax.Array, guidance: float) -> jax.Array:
  """Classifier-free guided velocity, u + w·(c − u), for noisy signals (N, 28, 28)
  at one `time`; the conditional and unconditional passes share one batch."""
  n = noisy.shape[0]
  both = velocity(graphdef, params, jnp.concatenate([noisy, noisy]),
                  jnp.full((2 * n,), time), jnp.concatenate(
                      [labels, jnp.full_like(labels, NO_CLASS)]))
  conditional, unconditional = both[:n], both[n:]
  return unconditional + guidance * (conditional - unconditional)


def flip_velocity(graphdef: nnx.GraphDef, params: nnx.State, noisy: jax.Array,
                  time: jax.Array, pairs: jax.Array, guidance: float) -> jax.Array:
  """The view-averaged velocity: ½·(v(x | a) + rot180 v(rot180 x | b)) per pair
  (a, b) of `pairs` (N, 2); both views go through the network as one batch."""
  n = noisy.shape[0]
  v = guided_velocity(graphdef, params,
                      jnp.concatenate([noisy, views.rot180(noisy)]), time,
                      jnp.concatenate([pairs[:, 0], pairs[:, 1]]), guidance)
  return 0.5 * (v[:n] + views.rot180(v[n:]))


@functools.partial(jax.jit, static_argnames=('graphdef', 'steps', 'guidance',
                                             'classifier', 'objective',
                                             'classifier_weight'))
def sample(graphdef: nnx.GraphDef, params: nnx.State, noise: jax.Array,
           pairs: jax.Array, key: jax.Array, classifier_params: nnx.State | None = None,
           *, steps: int, guidance: float, classifier: nnx.GraphDef | None = None,
           objective: objectives.FlipObjective | None = None,
           classifier_weight: float = 0.0) -> jax.Array:
  """Images (N, 28, 28) drawn from `noise` (N, 28, 28) by `steps` Euler steps.

  `pairs` (N, 2) of (a, b) draws flip digits with the view-averaged velocity;
  `pairs` (N,) of labels draws plain digits. With a `classifier` (a generating
  classifier's graphdef; weights in `classifier_params`), every step also moves
  each image along the gradient of `objective` at the model's current estimate of
  the clean image, x̂ = x − t·v, scaled to unit RMS times `classifier_weight`
  (classifier guidance; the gradient is not propagated through the network).
  """
  times = jnp.linspace(1.0, 0.0, steps + 1)
  flips = pairs.ndim == 2
  score_gradient = jax.vmap(jax.grad(objective, argnums=2), in_axes=(None, None, 0, 0, 0)
                            ) if classifier is not None else None

  def step(signal, inputs):
    time, next_time, step_key = inputs
    if flips:
      v = flip_velocity(graphdef, params, signal, time, pairs, guidance)
    else:
      v = guided_velocity(graphdef, params, signal, time, pairs, guidance)
    if classifier is not None:
      estimate = to_images(signal - time * v)
      gradient = score_gradient(classifier, classifier_params, estimate, pairs,
                                jax.random.split(step_key, signal.shape[0]))
      rms = jnp.sqrt(jnp.mean(gradient ** 2, axis=(1, 2), keepdims=True))
      # Euler steps go backwards in time, so subtracting from v adds to the image.
      v = v - classifier_weight * gradient / (rms + 1e-12)
    return signal + (next_time - time) * v, None

  signal, _ = jax.lax.scan(step, noise, (times[:-1], times[1:],
                                         jax.random.split(key, steps)))
  return to_images(signal)


@functools.partial(jax.jit, static_argnames=('graphdef',))
def flip_denoising_error(graphdef: nnx.GraphDef, params: nnx.State, images: jax.Array,
                         pairs: jax.Array, key: jax.Array) -> jax.Array:
  """(N, 2): the model's velocity error for each image as class a upright and as
  class b turned, averaged over noise levels t = 0.3, 0.5, 0.7 (one noise draw per
  level). Low error means the view is a typical digit of its class to the model
  that drew it: a generator-side check of realism (the diffusion-classifier idea,
  Li et al. 2023), not a judge's."""
  views = to_signal(jnp.concatenate([images, views.rot180(images)]))
  labels = jnp.concatenate([pairs[:, 0], pairs[:, 1]])
  errors = []
  for level, noise_key in zip((0.3, 0.5, 0.7), jax.random.split(key, 3)):
    noise = jax.random.normal(noise_key, views.shape)
    noisy = (1.0 - level) * views + level * noise
    predicted = velocity(graphdef, params, noisy, jnp.full(views.shape[:1], level), labels)
    errors.append(jnp.mean((predicted - (noise - views)) ** 2, axis=(1, 2)))
  return jnp.mean(jnp.stack(errors), 0).reshape(2, -1).T


def candidate_scores(min_probability: np.ndarray, errors: np.ndarray,
                     select: str) -> np.ndarray:
  """Per candidate, the score its pair's best maximizes. 'generator': the generating
  classifier's min(p_a, p_b). 'denoising': among candidates the generator reads both
  ways (min p > ½), the one whose worse view the diffusion model finds most typical
  (lowest max error); candidates the generator does not read rank below them all."""
  if select == 'generator':
    return min_probability
  readable = min_probability > 0.5
  return np.where(readable, 2.0 - errors.max(1) / (1.0 + errors.max(1)), min_probability)


def check_sampler(config: ml_collections.ConfigDict) -> None:
  """Refuses a bad sampler config before anything is trained or drawn."""
  if config.steps < 1:
    raise ConfigError(f'sampler.steps must be ≥ 1, not {config.steps}')
  if not (np.isfinite(config.guidance) and config.guidance >= 0):
    raise ConfigError(f'sampler.guidance must be finite and ≥ 0, not {config.guidance}')
  if config.get('select', 'generator') not in SELECTIONS:
    raise ConfigError(f'sampler.select must be one of {SELECTIONS}, not {config.select!r}')
  if not config.get('classifier_weight', 0.0) >= 0:
    raise ConfigError('sampler.classifier_weight must be ≥ 0, not '
                      f'{config.classifier_weight}')


def sampling_keys(seed: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The keys of the starting noise, of the sampler's steps and of the candidates'
  typicality check (`flip_denoising_error`), from one split so that no two share a
  key. (The check's key was once `fold_in(step_key, 1)`, which with partitionable
  threefry equals the second step's key, `split(step_key, steps)[1]`.)"""
  noise_key, step_key, typicality_key = jax.random.split(jax.random.key(seed), 3)
  return noise_key, step_key, typicality_key


def draw(config: ml_collections.ConfigDict, graphdef: nnx.GraphDef, params: nnx.State,
         targets: np.ndarray, what: str, classifier_params: nnx.State | None = None,
         **guided) -> tuple[jax.Array, timing.Seconds]:
  """`sample` for every row of `targets` (labels, or pairs), from noise seeded by
  config.seed, the batch split over all devices, compiled ahead of time and timed;
  `guided` are `sample`'s classifier-guidance arguments."""
  noise_key, step_key, _ = sampling_keys(config.seed)
  noise, targets = sharding.shard_batch(
      jax.random.normal(noise_key, (len(targets), 28, 28)), jnp.asarray(targets))
  images, seconds = timing.compile_and_run(
      sample, graphdef, params, noise, targets, step_key, classifier_params,
      steps=config.sampler.steps, guidance=config.sampler.guidance, **guided)
  logging.info('Drew %d %s: compile %.1f s, %d steps in %.1f s.', len(targets), what,
               seconds.compile, config.sampler.steps, seconds.run)
  return images, seconds


def draw_digits(config: ml_collections.ConfigDict, workdir: str,
                data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
  """`samples_per_digit` plain samples of each digit: images and labels."""
  check_sampler(config.sampler)
  graphdef, params = nnx.split(get_diffusion(config.diffusion, workdir, data_dir)[0])
  labels = np.repeat(np.arange(10, dtype=np.int32), config.samples_per_digit)
  images, _ = draw(config, graphdef, params, labels, 'digits')
  return np.asarray(images), labels


def draw_flips(config: ml_collections.ConfigDict, pairs: np.ndarray,
               classifier: nnx.GraphDef, classifier_params: nnx.State,
               objective: objectives.FlipObjective, workdir: str,
               data_dir: str | None) -> tuple[np.ndarray, np.ndarray, timing.Seconds]:
  """One view-averaged sample per row of `pairs` (N, 2), all in one compiled scan;
  classifier guidance by (classifier, objective) when sampler.classifier_weight > 0.
  Returns the images, their `flip_denoising_error` (N, 2) and the timing."""
  graphdef, params = nnx.split(get_diffusion(config.diffusion, workdir, data_dir)[0])
  weight = config.sampler.classifier_weight
  guided = dict(classifier=classifier, objective=objective,
                classifier_weight=weight) if weight else {}
  images, seconds = draw(config, graphdef, params, pairs, 'flip candidates',
                         classifier_params if weight else None, **guided)
  errors = flip_denoising_error(graphdef, params, images, jnp.asarray(pairs),
                                sampling_keys(config.seed)[2])
  return np.asarray(images), np.asarray(errors), seconds


def run_experiment(config: ml_collections.ConfigDict, workdir: str,
                   data_dir: str | None, name: str) -> None:
  """The diffusion job: the trained model (cached) and plain samples of each digit."""
  images, labels = draw_digits(config, workdir, data_dir)
  out_dir = io.experiment_dir(workdir, name)
  io.write_npz(out_dir / 'samples.npz', images=images.astype(np.float32),
               labels=labels.astype(np.int64))
  per_digit = config.samples_per_digit
  shown = min(per_digit, 10)
  index = (np.arange(10)[:, None] * per_digit + np.arange(shown)).ravel()
  plots.sample_grid(out_dir / 'samples.png', images[index], shown,
                    title=f'{config.diffusion.name}: {shown} samples per digit, '
                    f'guidance {config.sampler.guidance}, {config.sampler.steps} steps')
  print(f'{name}: {len(images)} samples ({per_digit} per digit) in {out_dir}; judge '
        f'them with: python run.py --experiment=evaluate '
        f'--config.samples={out_dir / "samples.npz"}')
