"""Training loops for classifiers, and the cache of trained models in the workdir."""

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


class Augmentation(NamedTuple):
  """Static training-time input changes (hashable, so it can be a jit static arg)."""
  max_shift: int = 0  # random integer translation, pixels
  rotation_degrees: float = 0.0  # random rotation in ±degrees
  scale_range: float = 0.0  # random scale in 1 ± scale_range
  adversarial_step_ratio: float = 0.0  # FGSM step / epsilon; 0 = no adversarial training
  overlay_fraction: float = 0.0  # share of each batch replaced by NOT_ONE_DIGIT overlays


def augmentation_from_config(config: ml_collections.ConfigDict) -> Augmentation:
  return Augmentation(config.max_shift, config.rotation_degrees, config.scale_range,
                      config.adversarial.step_ratio if config.adversarial.epsilon else 0.0,
                      config.get('overlay_fraction', 0.0))


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


@functools.partial(
    jax.jit, static_argnames=('graphdef', 'optimizer', 'augmentation'),
    donate_argnames=('params', 'opt_state'))
def train_step(graphdef: nnx.GraphDef, optimizer: optax.GradientTransformation,
               params: nnx.State, opt_state: optax.OptState, images: jax.Array,
               labels: jax.Array, batch: jax.Array, key: jax.Array, epsilon: jax.Array,
               *, augmentation: Augmentation,
               ) -> tuple[nnx.State, optax.OptState, jax.Array, jax.Array]:
  """One optimizer step on the examples `batch` indexes in (images, labels).

  The whole training set stays on the device; only the batch's indices change per
  call. `epsilon` is the adversarial radius of this step (used only when
  `augmentation.adversarial_step_ratio` > 0). Returns the new parameters and
  optimizer state, the loss and the batch accuracy. (A `lax.scan` over the steps of
  an epoch would save the dispatch, but XLA's CPU backend runs convolution
  weight-gradients ~3× slower inside a loop body than at top level: measured
  243 ms vs 87 ms here.)
  """
  keys = step_keys(key)
  batch_images = images[batch]
  batch_labels = labels[batch]
  if augmentation.overlay_fraction:
    batch_images, batch_labels = overlay_negatives(
        keys['overlay'], batch_images, batch_labels, augmentation.overlay_fraction)
  if augmentation.rotation_degrees or augmentation.scale_range:
    batch_images = views.random_affine(keys['affine'], batch_images,
                                 augmentation.rotation_degrees, augmentation.scale_range)
  batch_images = views.random_shift(keys['shift'], batch_images, augmentation.max_shift)
  if augmentation.adversarial_step_ratio:
    batch_images = fgsm_random_start(graphdef, params, keys['attack'], batch_images,
                                     batch_labels, epsilon,
                                     augmentation.adversarial_step_ratio)
  (loss, logits), grads = jax.value_and_grad(cross_entropy, argnums=1, has_aux=True)(
      graphdef, params, batch_images, batch_labels)
  updates, opt_state = optimizer.update(grads, opt_state, params)
  params = optax.apply_updates(params, updates)
  accuracy = jnp.mean(jnp.argmax(logits, -1) == batch_labels)
  return params, opt_state, loss, accuracy


@functools.partial(jax.jit, static_argnames=('graphdef', 'batch_size'))
def predict(graphdef: nnx.GraphDef, params: nnx.State, images: jax.Array, *,
            batch_size: int = 1000) -> jax.Array:
  """Logits for many images, in chunks of `batch_size` so memory stays bounded."""
  n = images.shape[0]
  padded = jnp.pad(images, ((0, -n % batch_size), (0, 0), (0, 0)))
  chunks = padded.reshape(-1, batch_size, *images.shape[1:])
  logits = jax.lax.map(functools.partial(models.apply, graphdef, params), chunks)
  return logits.reshape(-1, logits.shape[-1])[:n]


def epoch_batches(epoch_key: jax.Array, count: int,
                  batch_size: int) -> tuple[jax.Array, jax.Array]:
  """One epoch's shuffled batches of indices into `count` examples (steps,
  batch_size), the remainder dropped, and a key per step (steps,)."""
  order_key, step_keys_root = jax.random.split(epoch_key)
  steps = count // batch_size
  order = jax.random.permutation(order_key, count)
  return (order[:steps * batch_size].reshape(steps, -1),
          jax.random.split(step_keys_root, steps))


def accuracy(graphdef: nnx.GraphDef, params: nnx.State, images: np.ndarray,
             labels: np.ndarray) -> float:
  logits = predict(graphdef, params, jnp.asarray(data.to_float(images)))
  return float(jnp.mean(jnp.argmax(logits, -1) == labels))


def make_optimizer(config: ml_collections.ConfigDict,
                   total_steps: int) -> optax.GradientTransformation:
  """AdamW with a linear warm-up and cosine decay over the whole run."""
  schedule = optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=config.learning_rate,
      warmup_steps=max(1, total_steps // 20), decay_steps=total_steps)
  return optax.adamw(schedule, weight_decay=config.weight_decay)


def adversarial_epsilon(config: ml_collections.ConfigDict, step: int,
                        steps_per_epoch: int) -> np.float32:
  """The adversarial radius at `step`: ramped up linearly over the first epochs.

  Starting at full radius makes small MNIST models collapse to a constant guess;
  the ramp (as in Madry et al.'s and Wong et al.'s MNIST recipes) avoids it.
  """
  ramp_steps = config.adversarial.ramp_epochs * steps_per_epoch
  fraction = min(1.0, (step + 1) / ramp_steps) if ramp_steps else 1.0
  return np.float32(config.adversarial.epsilon * fraction)


def train_classifier(config: ml_collections.ConfigDict,
                     mnist: data.Mnist) -> tuple[models.Classifier, dict[str, Any]]:
  """Trains a classifier as `config` says; returns it and its metrics."""
  init_key, data_key = jax.random.split(jax.random.key(config.seed))
  model = models.make_classifier(config.model, init_key)
  graphdef, params = nnx.split(model)
  train_images, train_labels = mnist.train_images, mnist.train_labels
  if config.train_examples:
    train_images = train_images[:config.train_examples]
    train_labels = train_labels[:config.train_examples]
  images = jnp.asarray(data.to_float(train_images))
  labels = jnp.asarray(train_labels)
  steps_per_epoch = images.shape[0] // config.batch_size
  if steps_per_epoch == 0:
    raise TrainingError(f'batch_size {config.batch_size} exceeds the '
                        f'{images.shape[0]} training images')
  optimizer = make_optimizer(config, config.epochs * steps_per_epoch)
  opt_state = optimizer.init(params)
  augmentation = augmentation_from_config(config)
  logging.info('Training %s: %d parameters, %d epochs of %d steps (batch %d).',
               config.name, models.num_params(params), config.epochs,
               steps_per_epoch, config.batch_size)

  start = time.perf_counter()
  test_accuracy = float('nan')
  for epoch, epoch_key in enumerate(jax.random.split(data_key, config.epochs), 1):
    epoch_start = time.perf_counter()
    step_metrics = []
    for step, (batch, step_key) in enumerate(
        zip(*epoch_batches(epoch_key, images.shape[0], config.batch_size))):
      params, opt_state, loss, batch_accuracy = train_step(
          graphdef, optimizer, params, opt_state, images, labels, batch, step_key,
          adversarial_epsilon(config, (epoch - 1) * steps_per_epoch + step,
                              steps_per_epoch),
          augmentation=augmentation)
      step_metrics.append((loss, batch_accuracy))
    losses, accuracies = np.asarray(step_metrics).T
    if not np.all(np.isfinite(losses)):
      bad_step = int(np.argmin(np.isfinite(losses)))
      raise TrainingError(f'training {config.name} diverged: the loss became '
                          f'non-finite at epoch {epoch}, step {bad_step + 1}; '
                          'lower config.classifier.learning_rate')
    test_accuracy = accuracy(graphdef, params, mnist.test_images, mnist.test_labels)
    epoch_seconds = time.perf_counter() - epoch_start
    elapsed = time.perf_counter() - start
    logging.info(
        'epoch %d/%d  loss %.4f  train acc %.4f  test acc %.4f  %.0f images/s  '
        'ETA %.0fs', epoch, config.epochs, losses.mean(), accuracies.mean(),
        test_accuracy, steps_per_epoch * config.batch_size / epoch_seconds,
        elapsed / epoch * (config.epochs - epoch))
  train_seconds = time.perf_counter() - start
  metrics = {
      'test_accuracy': test_accuracy,
      'train_seconds': train_seconds,
      'num_params': models.num_params(params),
      'epochs': config.epochs,
      'final_train_loss': float(losses[-steps_per_epoch // 10:].mean()),
  }
  return nnx.merge(graphdef, params), metrics


def get_model(config: ml_collections.ConfigDict, workdir: str, data_dir: str | None,
              extra_metrics: Callable[[nnx.Module, data.Mnist], dict[str, Any]] | None = None,
              ) -> tuple[nnx.Module, dict[str, Any]]:
  """The classifier `config` describes: loaded from the workdir, or trained and saved.

  A saved model is reused only when it was trained with exactly this config.
  `extra_metrics(model, mnist)` adds measurements to a newly trained model's metrics.
  """
  def train() -> tuple[nnx.Module, dict[str, Any]]:
    mnist = data.load_mnist(data_dir)
    model, metrics = train_classifier(config, mnist)
    if extra_metrics:
      metrics.update(extra_metrics(model, mnist))
    return model, metrics

  # Only shapes matter for restoring, so any key will do.
  model, metrics = checkpoints.load_or_train(
      io.model_dir(workdir, config.name), config,
      lambda: models.make_classifier(config.model, jax.random.key(0)), train)
  logging.info('%s: test accuracy %.4f.', config.name, metrics['test_accuracy'])
  return model, metrics


def get_classifier(config: ml_collections.ConfigDict, workdir: str,
                   data_dir: str | None) -> tuple[nnx.Module, dict[str, Any]]:
  """A generating classifier (see `get_model`); judges' names are refused.

  Generators must never read the judges' models, or nothing could tell a readable
  image from one tuned to fool the judges too.
  """
  if config.name.startswith(JUDGE_PREFIX):
    raise ConfigError(f'classifier.name {config.name!r} is reserved for judges '
                      f'(names starting with {JUDGE_PREFIX!r})')
  return get_model(config, workdir, data_dir)


def run_experiment(config: ml_collections.ConfigDict, workdir: str,
                   data_dir: str | None, name: str) -> None:
  """The `train` job: makes sure the classifier exists and reports its accuracy."""
  del name  # The model's own name decides where it is saved.
  _, metrics = get_classifier(config.classifier, workdir, data_dir)
  print(f'{config.classifier.name}: test accuracy {metrics["test_accuracy"]:.4f} '
        f'({metrics["num_params"]} parameters, trained in '
        f'{metrics["train_seconds"]:.0f} s), saved in '
        f'{io.model_dir(workdir, config.classifier.name)}')
