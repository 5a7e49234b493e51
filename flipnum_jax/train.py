"""The one training loop for every model, the models' declared configs, and the
cache of trained models.

A model kind (`classifier`, `flow`, `vae`; see `KINDS`) is its config with every key
declared, the network it builds, its loss, its training examples and the metrics it
reports. `fit` trains any kind: keys, shuffled batches, the zero-step and divergence
guards, progress with ETA, the EMA of the weights where the kind keeps one. A trained
model is known by the fields of its config that shape its weights (`identity`), so
a logging setting never retrains it.
"""

import functools
import time
from typing import Any, Callable, NamedTuple

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
from flipnum_jax import views
from flipnum_jax.errors import ConfigError, TrainingError

# Models whose name starts with this are judges: generators may not load them.
JUDGE_PREFIX = 'judge_'
# Config keys that do not change the weights: where the model lives, how often the
# loop reports. Everything else is the model's identity.
NOT_WEIGHTS = ('name', 'log_every')


def classifier_config() -> ml_collections.ConfigDict:
  """The generating classifier, every key declared: a small CNN on MNIST."""
  config = ml_collections.ConfigDict()
  config.name = 'classifier'
  config.seed = 0
  config.model = models.classifier_spec()
  config.epochs = 10
  config.batch_size = 128
  config.learning_rate = 3e-3
  config.weight_decay = 1e-4
  config.max_shift = 2  # random translations of up to 2 pixels
  config.rotation_degrees = 0.0  # random rotations (0 = none)
  config.scale_range = 0.0  # random scaling by 1 ± this (0 = none)
  # Adversarial training (FGSM with random start); epsilon 0 = off.
  config.adversarial = ml_collections.ConfigDict(
      {'epsilon': 0.0, 'step_ratio': 1.25, 'ramp_epochs': 0})
  config.overlay_fraction = 0.0  # share of each batch made NOT_ONE_DIGIT overlays
  config.train_examples = 0  # 0 = all 60,000
  config.log_every = 100  # steps between progress lines
  return config


def flow_config() -> ml_collections.ConfigDict:
  """The class-conditional flow-matching U-Net, every key declared."""
  config = ml_collections.ConfigDict()
  config.name = 'diffusion'
  config.seed = 0
  config.model = models.unet_spec()
  config.epochs = 5
  config.batch_size = 64
  config.learning_rate = 1e-3
  config.weight_decay = 0.0
  config.label_dropout = 0.1  # how often a label becomes "no class" (for guidance)
  # Mild augmentation, so the model learns more handwriting styles than MNIST's
  # 60,000 (0 = none): random rotations in ±degrees, scaling by 1 ± scale_range.
  config.rotation_degrees = 0.0
  config.scale_range = 0.0
  config.ema_decay = 0.999
  config.train_examples = 0  # 0 = all 60,000
  config.log_every = 100
  return config


def vae_config() -> ml_collections.ConfigDict:
  """The VAE prior (trained on digits upright and turned), every key declared."""
  config = ml_collections.ConfigDict()
  config.name = 'vae'
  config.seed = 0
  config.model = models.vae_spec()
  config.epochs = 10
  config.batch_size = 128
  config.learning_rate = 1e-3
  config.log_every = 100
  return config


# --- Classifiers -------------------------------------------------------------------

# The label of an open-set classifier's 11th class: two digits drawn over each other.
NOT_ONE_DIGIT = 10


def overlay_negatives(key: jax.Array, images: jax.Array, labels: jax.Array,
                      fraction: float) -> tuple[jax.Array, jax.Array]:
  """Replaces the first `fraction` of the batch by overlays labelled NOT_ONE_DIGIT:
  each image with another of the batch turned 180° and moved up to ±3 pixels on top
  (the brighter ink wins). A judge that learns this class tells a digit from a
  superposition of two, which a flip image can otherwise pass for."""
  count = int(round(fraction * images.shape[0]))
  partners = views.random_shift(key, views.rot180(jnp.roll(images[:count], 1, axis=0)), 3)
  overlays = jnp.maximum(images[:count], partners)
  return (images.at[:count].set(overlays),
          labels.at[:count].set(NOT_ONE_DIGIT))


def cross_entropy(graphdef: nnx.GraphDef, params: nnx.State, images: jax.Array,
                  labels: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Mean cross-entropy loss and the logits."""
  logits = models.apply(graphdef, params, images)
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  return loss, logits


def fgsm_random_start(graphdef: nnx.GraphDef, params: nnx.State, key: jax.Array,
                      images: jax.Array, labels: jax.Array, epsilon: jax.Array,
                      step_ratio: float) -> jax.Array:
  """FGSM from a random start inside the L∞ ball (Wong, Rice & Kolter, 2020)."""
  delta = jax.random.uniform(key, images.shape, minval=-epsilon, maxval=epsilon)
  loss_of_delta = lambda d: cross_entropy(
      graphdef, params, jnp.clip(images + d, 0.0, 1.0), labels)[0]
  delta = delta + step_ratio * epsilon * jnp.sign(jax.grad(loss_of_delta)(delta))
  return jnp.clip(images + jnp.clip(delta, -epsilon, epsilon), 0.0, 1.0)


STEP_KEY_USES = ('affine', 'shift', 'attack', 'overlay')


def step_keys(key: jax.Array) -> dict[str, jax.Array]:
  """One key per random use of a classifier training step. (With partitionable
  threefry, `fold_in(key, i)` equals `split(key, n)[i]` and `split(key, 4)[:3]`
  equals `split(key, 3)`: the overlay key once came from `fold_in(key, 1)` and so
  was the shift key. Splitting once for all four keeps the first three as they were,
  so models without overlays train exactly as before.)"""
  return dict(zip(STEP_KEY_USES, jax.random.split(key, len(STEP_KEY_USES))))


class ClassifierLoss(NamedTuple):
  """Cross-entropy after the training-time input changes; its fields are static
  settings (hashable, so the loss can be a static argument of `jax.jit`)."""
  max_shift: int = 0  # random integer translation, pixels
  rotation_degrees: float = 0.0  # random rotation in ±degrees
  scale_range: float = 0.0  # random scale in 1 ± scale_range
  adversarial_step_ratio: float = 0.0  # FGSM step / epsilon; 0 = no adversarial training
  overlay_fraction: float = 0.0  # share of each batch replaced by NOT_ONE_DIGIT overlays

  def __call__(self, graphdef: nnx.GraphDef, params: nnx.State,
               examples: tuple[jax.Array, jax.Array], key: jax.Array,
               epsilon: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(loss, batch accuracy); `epsilon` is this step's adversarial radius."""
    keys = step_keys(key)
    images, labels = examples
    if self.overlay_fraction:
      images, labels = overlay_negatives(keys['overlay'], images, labels,
                                         self.overlay_fraction)
    if self.rotation_degrees or self.scale_range:
      images = views.random_affine(keys['affine'], images, self.rotation_degrees,
                                   self.scale_range)
    images = views.random_shift(keys['shift'], images, self.max_shift)
    if self.adversarial_step_ratio:
      images = fgsm_random_start(graphdef, params, keys['attack'], images, labels,
                                 epsilon, self.adversarial_step_ratio)
    loss, logits = cross_entropy(graphdef, params, images, labels)
    return loss, jnp.mean(jnp.argmax(logits, -1) == labels)


def classifier_loss(config: ml_collections.ConfigDict) -> ClassifierLoss:
  return ClassifierLoss(config.max_shift, config.rotation_degrees, config.scale_range,
                        config.adversarial.step_ratio if config.adversarial.epsilon else 0.0,
                        config.overlay_fraction)


def adversarial_epsilon(config: ml_collections.ConfigDict, step: int,
                        steps_per_epoch: int) -> np.float32:
  """The adversarial radius at `step`: ramped up linearly over the first epochs.

  Starting at full radius makes small MNIST models collapse to a constant guess;
  the ramp (as in Madry et al.'s and Wong et al.'s MNIST recipes) avoids it.
  """
  ramp_steps = config.adversarial.ramp_epochs * steps_per_epoch
  fraction = min(1.0, (step + 1) / ramp_steps) if ramp_steps else 1.0
  return np.float32(config.adversarial.epsilon * fraction)


@functools.partial(jax.jit, static_argnames=('graphdef', 'batch_size'))
def predict(graphdef: nnx.GraphDef, params: nnx.State, images: jax.Array, *,
            batch_size: int = 1000) -> jax.Array:
  """Logits for many images, in chunks of `batch_size` so memory stays bounded."""
  n = images.shape[0]
  padded = jnp.pad(images, ((0, -n % batch_size), (0, 0), (0, 0)))
  chunks = padded.reshape(-1, batch_size, *images.shape[1:])
  logits = jax.lax.map(functools.partial(models.apply, graphdef, params), chunks)
  return logits.reshape(-1, logits.shape[-1])[:n]


def accuracy(graphdef: nnx.GraphDef, params: nnx.State, images: np.ndarray,
             labels: np.ndarray) -> float:
  logits = predict(graphdef, params, jnp.asarray(data.to_float(images)))
  return float(jnp.mean(jnp.argmax(logits, -1) == labels))


# --- The flow-matching model ----------------------------------------------------


class FlowMatchingLoss(NamedTuple):
  """Mean squared error of the predicted velocity at random times and noise:
  x_t = (1 − t)·x + t·ε for data x in [−1, 1], target ε − x; labels dropped to
  `models.NO_CLASS` at `label_dropout` (for classifier-free guidance); the digits
  first rotated and scaled at random when `rotation_degrees` or `scale_range` is set."""
  label_dropout: float
  rotation_degrees: float = 0.0
  scale_range: float = 0.0

  def __call__(self, graphdef: nnx.GraphDef, params: nnx.State,
               examples: tuple[jax.Array, jax.Array], key: jax.Array,
               unused_schedule: jax.Array) -> tuple[jax.Array, jax.Array]:
    images, labels = examples
    # Four keys, the first three as `split(key, 3)` gives them (partitionable
    # threefry), so a model without augmentation trains exactly as before.
    noise_key, time_key, drop_key, affine_key = jax.random.split(key, 4)
    if self.rotation_degrees or self.scale_range:
      images = views.random_affine(affine_key, images, self.rotation_degrees,
                                   self.scale_range)
    signal = models.to_signal(images)
    noise = jax.random.normal(noise_key, signal.shape)
    times = jax.random.uniform(time_key, (signal.shape[0],))
    labels = jnp.where(jax.random.bernoulli(drop_key, self.label_dropout, labels.shape),
                       models.NO_CLASS, labels)
    noisy = (1.0 - times[:, None, None]) * signal + times[:, None, None] * noise
    predicted = nnx.merge(graphdef, params)(noisy, times, labels)
    return jnp.mean((predicted - (noise - signal)) ** 2), jnp.float32(0.0)


# --- The VAE prior -----------------------------------------------------------------


def negative_elbo(graphdef: nnx.GraphDef, params: nnx.State,
                  examples: tuple[jax.Array], key: jax.Array,
                  unused_schedule: float = 0.0) -> tuple[jax.Array, jax.Array]:
  """Mean over the batch of −ELBO: Bernoulli reconstruction + KL to N(0, I)."""
  vae = nnx.merge(graphdef, params)
  images, = examples
  mean, log_variance = vae.encode(images)
  latents = mean + jnp.exp(0.5 * log_variance) * jax.random.normal(key, mean.shape)
  reconstruction = optax.sigmoid_binary_cross_entropy(vae.decode_logits(latents),
                                                      images).sum((1, 2))
  kl = 0.5 * jnp.sum(jnp.exp(log_variance) + mean ** 2 - 1.0 - log_variance, axis=1)
  return jnp.mean(reconstruction + kl), jnp.float32(0.0)


# --- One loop for every kind -------------------------------------------------------


def make_optimizer(config: ml_collections.ConfigDict,
                   total_steps: int) -> optax.GradientTransformation:
  """AdamW with a linear warm-up and cosine decay over the whole run."""
  schedule = optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=config.learning_rate,
      warmup_steps=max(1, total_steps // 20), decay_steps=total_steps)
  return optax.adamw(schedule, weight_decay=config.weight_decay)


def first_examples(config: ml_collections.ConfigDict, mnist: data.Mnist
                   ) -> tuple[jax.Array, jax.Array]:
  """The first `train_examples` training digits (0 = all) and their labels."""
  count = config.train_examples or mnist.train_images.shape[0]
  return (jnp.asarray(data.to_float(mnist.train_images[:count])),
          jnp.asarray(mnist.train_labels[:count]))


def both_views(config: ml_collections.ConfigDict, mnist: data.Mnist) -> tuple[jax.Array]:
  """Every training digit upright and turned 180° (the VAE's data)."""
  del config  # all of them
  upright = data.to_float(mnist.train_images)
  return (jnp.asarray(np.concatenate([upright, upright[:, ::-1, ::-1]])),)


class Kind(NamedTuple):
  """What `fit` needs to know about one kind of model."""
  defaults: Callable[[], ml_collections.ConfigDict]  # every key declared
  build: Callable[[ml_collections.ConfigDict, jax.Array], nnx.Module]  # (model, key)
  loss: Callable[[ml_collections.ConfigDict], Callable]  # hashable loss
  examples: Callable[[ml_collections.ConfigDict, data.Mnist], tuple[jax.Array, ...]]
  optimizer: Callable[[ml_collections.ConfigDict, int], optax.GradientTransformation]
  # The loss's per-step schedule value (the adversarial radius), host-side.
  schedule: Callable[[ml_collections.ConfigDict, int, int], np.float32]
  # Measurements of the trained model, added to its metrics.
  evaluate: Callable[[nnx.Module, data.Mnist], dict[str, Any]]
  ema: bool = False  # sample with an exponential moving average of the weights
  metric: str = ''  # what the loss's auxiliary output measures ('' = nothing)


def _test_accuracy(model: nnx.Module, mnist: data.Mnist) -> dict[str, Any]:
  return {'test_accuracy': accuracy(*nnx.split(model), mnist.test_images,
                                    mnist.test_labels)}


def _test_negative_elbo(model: nnx.Module, mnist: data.Mnist) -> dict[str, Any]:
  test = (jnp.asarray(data.to_float(mnist.test_images[:1000])),)
  return {'test_negative_elbo': float(negative_elbo(*nnx.split(model), test,
                                                    jax.random.key(0))[0])}


_NO_SCHEDULE = lambda config, step, steps_per_epoch: np.float32(0.0)

KINDS = {
    'classifier': Kind(classifier_config, models.make_classifier, classifier_loss,
                       first_examples, make_optimizer, adversarial_epsilon,
                       _test_accuracy, metric='train accuracy'),
    'flow': Kind(flow_config, models.make_unet,
                 lambda config: FlowMatchingLoss(config.label_dropout,
                                                 config.rotation_degrees,
                                                 config.scale_range), first_examples,
                 make_optimizer, _NO_SCHEDULE, lambda model, mnist: {}, ema=True),
    'vae': Kind(vae_config, models.make_vae, lambda config: negative_elbo, both_views,
                lambda config, total_steps: optax.adam(config.learning_rate),
                _NO_SCHEDULE, _test_negative_elbo),
}


@functools.partial(jax.jit, static_argnames=('graphdef', 'loss', 'optimizer',
                                             'ema_decay'),
                   donate_argnames=('params', 'ema_params', 'opt_state'))
def fit_step(graphdef: nnx.GraphDef, loss: Callable, optimizer: optax.GradientTransformation,
             params: nnx.State, ema_params: nnx.State | None, opt_state: optax.OptState,
             examples: tuple[jax.Array, ...], batch: jax.Array, key: jax.Array,
             schedule: jax.Array, *, ema_decay: float = 0.0):
  """One optimizer step on the examples `batch` indexes (the whole training set stays
  on the device; only the indices change per call); with `ema_decay`, also the
  moving average of the weights. Returns params, EMA params, optimizer state, the
  loss and the loss's auxiliary metric. (A `lax.scan` over an epoch's steps would
  save the dispatch, but XLA's CPU backend runs convolution weight-gradients ~3×
  slower inside a loop body than at top level: measured 243 ms vs 87 ms here.)"""
  batch_examples = tuple(e[batch] for e in examples)
  (value, metric), grads = jax.value_and_grad(loss, argnums=1, has_aux=True)(
      graphdef, params, batch_examples, key, schedule)
  updates, opt_state = optimizer.update(grads, opt_state, params)
  params = optax.apply_updates(params, updates)
  if ema_decay:
    ema_params = jax.tree.map(lambda e, p: ema_decay * e + (1.0 - ema_decay) * p,
                              ema_params, params)
  return params, ema_params, opt_state, value, metric


def epoch_batches(epoch_key: jax.Array, count: int,
                  batch_size: int) -> tuple[jax.Array, jax.Array]:
  """One epoch's shuffled batches of indices into `count` examples (steps,
  batch_size), the remainder dropped, and a key per step (steps,)."""
  order_key, step_keys_root = jax.random.split(epoch_key)
  steps = count // batch_size
  order = jax.random.permutation(order_key, count)
  return (order[:steps * batch_size].reshape(steps, -1),
          jax.random.split(step_keys_root, steps))


def _check_finite(losses: list[jax.Array], config: ml_collections.ConfigDict,
                  epoch: int, first_step: int) -> float:
  """The mean of `losses` (steps first_step…), or a TrainingError naming the first
  non-finite one."""
  values = np.asarray(losses)
  if not np.all(np.isfinite(values)):
    bad = first_step + int(np.argmin(np.isfinite(values)))
    raise TrainingError(f'training {config.name} diverged: the loss became non-finite '
                        f'at epoch {epoch}, step {bad}; lower its learning_rate '
                        f'(now {config.learning_rate})')
  return float(values.mean())


def fit(kind: Kind, config: ml_collections.ConfigDict,
        mnist: data.Mnist) -> tuple[nnx.Module, dict[str, Any]]:
  """Trains a model of `kind` as `config` says; returns it (its EMA weights where
  the kind keeps them) and its metrics."""
  init_key, data_key = jax.random.split(jax.random.key(config.seed))
  examples = kind.examples(config, mnist)
  count = examples[0].shape[0]
  steps_per_epoch = count // config.batch_size
  if steps_per_epoch == 0 or config.epochs < 1:
    raise TrainingError(f'training {config.name}: {config.epochs} epochs of '
                        f'{count} examples // batch_size {config.batch_size} '
                        'is no step at all')
  graphdef, params = nnx.split(kind.build(config.model, init_key))
  total_steps = config.epochs * steps_per_epoch
  optimizer = kind.optimizer(config, total_steps)
  opt_state = optimizer.init(params)
  ema_params = jax.tree.map(jnp.copy, params) if kind.ema else None
  loss = kind.loss(config)
  logging.info('Training %s: %d parameters, %d epochs of %d steps (batch %d).',
               config.name, models.num_params(params), config.epochs, steps_per_epoch,
               config.batch_size)
  start = time.perf_counter()
  for epoch, epoch_key in enumerate(jax.random.split(data_key, config.epochs), 1):
    losses, aux = [], []
    for step, (batch, step_key) in enumerate(
        zip(*epoch_batches(epoch_key, count, config.batch_size)), 1):
      done = (epoch - 1) * steps_per_epoch + step
      params, ema_params, opt_state, value, metric = fit_step(
          graphdef, loss, optimizer, params, ema_params, opt_state, examples, batch,
          step_key, kind.schedule(config, done - 1, steps_per_epoch),
          ema_decay=config.ema_decay if kind.ema else 0.0)
      losses.append(value)
      aux.append(metric)
      if step % config.log_every == 0:  # the only host round-trip: a progress line
        recent = _check_finite(losses[-config.log_every:], config, epoch,
                               step - config.log_every + 1)
        elapsed = time.perf_counter() - start
        logging.info('%s epoch %d/%d step %d/%d  loss %.4f  %.1f steps/s  ETA %.0fs',
                     config.name, epoch, config.epochs, step, steps_per_epoch, recent,
                     done / elapsed, elapsed / done * (total_steps - done))
    epoch_loss = _check_finite(losses, config, epoch, 1)
    elapsed = time.perf_counter() - start
    measured = f'  {kind.metric} {np.mean(np.asarray(aux)):.4f}' if kind.metric else ''
    logging.info('%s epoch %d/%d  loss %.4f%s  %.0f examples/s  ETA %.0fs', config.name,
                 epoch, config.epochs, epoch_loss, measured,
                 epoch * steps_per_epoch * config.batch_size / elapsed,
                 elapsed / epoch * (config.epochs - epoch))
  model = nnx.merge(graphdef, ema_params if kind.ema else params)
  metrics = {'final_train_loss': epoch_loss, 'train_seconds': time.perf_counter() - start,
             'num_params': models.num_params(params), 'epochs': config.epochs}
  metrics.update(kind.evaluate(model, mnist))
  return model, metrics


# --- The cache of trained models ---------------------------------------------------


def identity(kind: Kind, config: dict[str, Any]) -> dict[str, Any]:
  """What shapes a model's weights: its config (as saved, JSON data) over the kind's
  declared defaults (so a model saved before a key was declared still matches),
  without `NOT_WEIGHTS`."""
  def merged(defaults, values):
    out = dict(defaults)
    for key, value in values.items():
      out[key] = (merged(defaults[key], value) if isinstance(value, dict)
                  and isinstance(defaults.get(key), dict) else value)
    return out
  full = merged(checkpoints.config_to_dict(kind.defaults()), config)
  return {key: value for key, value in full.items() if key not in NOT_WEIGHTS}


def get_model(kind_name: str, config: ml_collections.ConfigDict, workspace: io.Workspace,
              extra_metrics: Callable[[nnx.Module, data.Mnist], dict[str, Any]] | None = None,
              ) -> tuple[nnx.Module, dict[str, Any]]:
  """The model `config` describes: loaded from the workdir (or `pretrained/`) when
  one there has the same `identity`, else trained with `fit` and saved.
  `extra_metrics(model, mnist)` adds measurements to a newly trained model's."""
  kind = KINDS[kind_name]
  unknown = set(checkpoints.config_to_dict(config)) - set(
      checkpoints.config_to_dict(kind.defaults()))
  if unknown:
    raise ConfigError(f'{config.name}: unknown {kind_name} setting(s) {sorted(unknown)}')

  def train() -> tuple[nnx.Module, dict[str, Any]]:
    model, metrics = fit(kind, config, workspace.mnist)
    if extra_metrics:
      metrics.update(extra_metrics(model, workspace.mnist))
    return model, metrics

  # Only shapes matter for restoring, so any key will do.
  return checkpoints.load_or_train(
      workspace.model_dir(config.name), config,
      functools.partial(identity, kind),
      lambda: kind.build(config.model, jax.random.key(0)), train)


def get_classifier(config: ml_collections.ConfigDict,
                   workspace: io.Workspace) -> tuple[nnx.Module, dict[str, Any]]:
  """A generating classifier (see `get_model`); judges' names are refused.

  Generators must never read the judges' models, or nothing could tell a readable
  image from one tuned to fool the judges too.
  """
  if config.name.startswith(JUDGE_PREFIX):
    raise ConfigError(f'classifier.name {config.name!r} is reserved for judges '
                      f'(names starting with {JUDGE_PREFIX!r})')
  model, metrics = get_model('classifier', config, workspace)
  logging.info('%s: test accuracy %.4f.', config.name, metrics['test_accuracy'])
  return model, metrics


def run_experiment(config: ml_collections.ConfigDict, workspace: io.Workspace,
                   name: str) -> None:
  """The `train` job: makes sure the classifier exists and reports its accuracy."""
  del name  # The model's own name decides where it is saved.
  _, metrics = get_classifier(config.classifier, workspace)
  print(f'{config.classifier.name}: test accuracy {metrics["test_accuracy"]:.4f} '
        f'({metrics["num_params"]} parameters, trained in '
        f'{metrics["train_seconds"]:.0f} s), saved in '
        f'{workspace.model_dir(config.classifier.name)}')
