import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from experiments import train as train_experiment
from flipnum_jax import checkpoints
from flipnum_jax import io
from flipnum_jax import models
from flipnum_jax import train
from flipnum_jax import views
from flipnum_jax.errors import CheckpointError, TrainingError


def smoke_config(**overrides):
  config = train_experiment.classifier_config('smoke')
  config.train_examples = 0
  config.batch_size = 64
  config.update(overrides)
  return config


def test_random_shift_moves_content_by_at_most_max_shift():
  images = jnp.zeros((16, 28, 28)).at[:, 14, 14].set(1.0)
  shifted = jax.jit(views.random_shift, static_argnums=2)(jax.random.key(0), images, 2)
  assert shifted.shape == images.shape
  rows, cols = np.nonzero(np.asarray(shifted).sum(0))
  assert np.all(np.abs(rows - 14) <= 2) and np.all(np.abs(cols - 14) <= 2)
  assert len(set(zip(rows, cols))) > 1  # the offsets differ between images
  np.testing.assert_array_equal(np.asarray(shifted).sum((1, 2)), 1.0)  # nothing lost
  np.testing.assert_array_equal(views.random_shift(jax.random.key(0), images, 0), images)


def test_jitted_train_steps_lower_the_loss(tiny_mnist):
  config = smoke_config(learning_rate=3e-3)
  model = models.make_classifier(config.model, jax.random.key(0))
  graphdef, params = nnx.split(model)
  optimizer = train.make_optimizer(config, total_steps=40)
  opt_state = optimizer.init(params)
  images = jnp.asarray(tiny_mnist.train_images[:64] / 255.0, jnp.float32)
  labels = jnp.asarray(tiny_mnist.train_labels[:64])
  batch = jnp.arange(64)
  initial, _ = train.cross_entropy(graphdef, params, images, labels)
  for step in range(40):
    params, opt_state, loss, _ = train.train_step(
        graphdef, optimizer, params, opt_state, images, labels, batch,
        jax.random.key(step), np.float32(0.0), augmentation=train.Augmentation())
  final, _ = train.cross_entropy(graphdef, params, images, labels)
  assert float(final) < 0.5 * float(initial)


def test_training_is_deterministic_and_learns(tiny_mnist):
  config = smoke_config(epochs=3)
  (model_a, metrics_a), (model_b, _) = [train.train_classifier(config, tiny_mnist)
                                        for _ in range(2)]
  for a, b in zip(jax.tree.leaves(nnx.state(model_a)), jax.tree.leaves(nnx.state(model_b))):
    np.testing.assert_array_equal(a, b)
  assert metrics_a['test_accuracy'] > 0.3  # chance is 0.1
  assert set(metrics_a) >= {'test_accuracy', 'train_seconds', 'num_params'}


def test_non_finite_loss_stops_training(tiny_mnist):
  with pytest.raises(TrainingError, match='non-finite'):
    train.train_classifier(smoke_config(learning_rate=1e30), tiny_mnist)


def test_checkpoint_round_trip_gives_identical_logits(tmp_path, tiny_mnist):
  config = smoke_config()
  model, metrics = train.train_classifier(config, tiny_mnist)
  checkpoints.save(tmp_path, model, config, metrics)
  restored, restored_metrics = checkpoints.load(
      tmp_path, lambda: models.make_classifier(config.model, jax.random.key(99)))
  images = jnp.asarray(tiny_mnist.test_images / 255.0, jnp.float32)
  np.testing.assert_array_equal(model(images), restored(images))
  assert restored_metrics == json.loads(json.dumps(metrics))
  assert checkpoints.saved_config(tmp_path) == checkpoints.config_to_dict(config)


def test_damaged_checkpoint_is_a_clear_error(tmp_path, tiny_mnist):
  config = smoke_config()
  model, metrics = train.train_classifier(config, tiny_mnist)
  checkpoints.save(tmp_path, model, config, metrics)
  for path in (tmp_path / checkpoints.PARAMS).rglob('*'):
    if path.is_file():
      path.write_bytes(b'garbage')
  with pytest.raises(CheckpointError, match='damaged'):
    checkpoints.load(tmp_path, lambda: models.make_classifier(config.model, jax.random.key(0)))


def test_get_classifier_reuses_a_matching_model_and_retrains_otherwise(
    tmp_path, mnist_dir, monkeypatch):
  config = train_experiment.classifier_config('smoke')
  model, metrics = train.get_classifier(config, str(tmp_path), str(mnist_dir))
  folder = io.model_dir(tmp_path, config.name)
  assert (folder / 'metrics.json').is_file() and (folder / 'config.json').is_file()

  calls = []
  real_train = train.train_classifier
  monkeypatch.setattr(train, 'train_classifier',
                      lambda *args: calls.append(1) or real_train(*args))
  again, again_metrics = train.get_classifier(config, str(tmp_path), str(mnist_dir))
  assert not calls and again_metrics == metrics
  images = jnp.zeros((2, 28, 28))
  np.testing.assert_array_equal(model(images), again(images))

  config.seed = 1
  train.get_classifier(config, str(tmp_path), str(mnist_dir))
  assert calls == [1]
  assert checkpoints.saved_config(folder)['seed'] == 1


def test_overlay_negatives_relabel_a_share_of_the_batch_as_two_digits():
  images = jnp.zeros((8, 28, 28)).at[:, 5:9, 10:12].set(1.0)  # a short bar, top half
  labels = jnp.arange(8) % 10
  overlaid, new_labels = jax.jit(train.overlay_negatives, static_argnums=3)(
      jax.random.key(0), images, labels, 0.25)
  assert new_labels.tolist() == [10, 10, 2, 3, 4, 5, 6, 7]
  np.testing.assert_array_equal(overlaid[2:], images[2:])
  for k in range(2):  # each overlay keeps its digit and adds a turned partner's ink
    assert bool(jnp.all(overlaid[k] >= images[k]))
    assert float(overlaid[k, 14:].sum()) > 0  # the turned bar lands in the bottom half


def _key_bits(keys) -> list[tuple[int, ...]]:
  return [tuple(np.asarray(jax.random.key_data(k)).ravel()) for k in keys]


def test_step_keys_are_distinct_and_keep_the_old_three():
  key = jax.random.key(5)
  keys = train.step_keys(key)
  assert set(keys) == set(train.STEP_KEY_USES)
  assert len(set(_key_bits(keys.values()))) == len(keys)
  # Models without overlays must train exactly as before: same three keys.
  assert _key_bits([keys['affine'], keys['shift'], keys['attack']]) == _key_bits(
      jax.random.split(key, 3))
