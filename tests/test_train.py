import functools
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
from flipnum_jax.errors import CheckpointError, ConfigError, TrainingError
from tests.test_run import assert_one_line_error, run_cli

CLASSIFIER = train.KINDS['classifier']


def smoke_config(**overrides):
  config = train_experiment.classifier_config('smoke')
  config.train_examples = 0
  config.batch_size = 64
  config.update(overrides)
  return config


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
    params, _, opt_state, loss, _ = train.fit_step(
        graphdef, train.ClassifierLoss(), optimizer, params, None, opt_state,
        (images, labels), batch, jax.random.key(step), np.float32(0.0))
  final, _ = train.cross_entropy(graphdef, params, images, labels)
  assert float(final) < 0.5 * float(initial)


def test_training_is_deterministic_and_learns(tiny_mnist):
  config = smoke_config(epochs=3)
  (model_a, metrics_a), (model_b, _) = [train.fit(CLASSIFIER, config, tiny_mnist)
                                        for _ in range(2)]
  for a, b in zip(jax.tree.leaves(nnx.state(model_a)), jax.tree.leaves(nnx.state(model_b))):
    np.testing.assert_array_equal(a, b)
  assert metrics_a['test_accuracy'] > 0.3  # chance is 0.1
  assert set(metrics_a) >= {'test_accuracy', 'train_seconds', 'num_params'}


def test_non_finite_loss_stops_training(tiny_mnist):
  with pytest.raises(TrainingError, match='non-finite'):
    train.fit(CLASSIFIER, smoke_config(learning_rate=1e30), tiny_mnist)


def test_checkpoint_round_trip_gives_identical_logits(tmp_path, tiny_mnist):
  config = smoke_config()
  model, metrics = train.fit(CLASSIFIER, config, tiny_mnist)
  checkpoints.save(tmp_path, model, config, metrics)
  restored, restored_metrics = checkpoints.load(
      tmp_path, lambda: models.make_classifier(config.model, jax.random.key(99)))
  images = jnp.asarray(tiny_mnist.test_images / 255.0, jnp.float32)
  np.testing.assert_array_equal(model(images), restored(images))
  assert restored_metrics == json.loads(json.dumps(metrics))
  assert checkpoints.saved_config(tmp_path) == checkpoints.config_to_dict(config)


def test_damaged_checkpoint_is_a_clear_error(tmp_path, tiny_mnist):
  config = smoke_config()
  model, metrics = train.fit(CLASSIFIER, config, tiny_mnist)
  checkpoints.save(tmp_path, model, config, metrics)
  for path in (tmp_path / checkpoints.PARAMS).rglob('*'):
    if path.is_file():
      path.write_bytes(b'garbage')
  with pytest.raises(CheckpointError, match='damaged'):
    checkpoints.load(tmp_path, lambda: models.make_classifier(config.model, jax.random.key(0)))


def test_get_classifier_reuses_a_matching_model_and_retrains_otherwise(
    tmp_path, mnist_dir, monkeypatch):
  config = train_experiment.classifier_config('smoke')
  workspace = io.Workspace(tmp_path, str(mnist_dir))
  model, metrics = train.get_classifier(config, workspace)
  folder = workspace.model_dir(config.name)
  assert (folder / 'metrics.json').is_file() and (folder / 'config.json').is_file()

  calls = []
  real_fit = train.fit
  monkeypatch.setattr(train, 'fit', lambda *args: calls.append(1) or real_fit(*args))
  config.log_every = 7  # how often training reports does not change the weights
  again, again_metrics = train.get_classifier(config, workspace)
  assert not calls and again_metrics == metrics
  images = jnp.zeros((2, 28, 28))
  np.testing.assert_array_equal(model(images), again(images))

  config.seed = 1
  train.get_classifier(config, workspace)
  assert calls == [1]
  assert checkpoints.saved_config(folder)['seed'] == 1


def test_a_model_saved_before_a_key_was_declared_is_still_reused(tmp_path, tiny_mnist):
  # Saved configs lack keys declared later (kernel_size, num_classes, kind,
  # overlay_fraction, log_every): at their declared defaults they are the same model.
  config = smoke_config()
  model, metrics = train.fit(CLASSIFIER, config, tiny_mnist)
  checkpoints.save(tmp_path, model, config, metrics)
  saved = checkpoints.saved_config(tmp_path)
  for key in ('overlay_fraction', 'log_every'):
    del saved[key]
  for key in ('kind', 'kernel_size', 'num_classes'):
    del saved['model'][key]
  (tmp_path / checkpoints.CONFIG).write_text(json.dumps(saved))
  fail = lambda: pytest.fail('retrained a model whose weights are unchanged')
  loaded, _ = checkpoints.load_or_train(tmp_path, config,
                                        functools.partial(train.identity, CLASSIFIER),
                                        lambda: model, fail)
  config.model.kernel_size = 5  # an architecture knob is the model's identity
  with pytest.raises(RuntimeError, match='retrain'):
    checkpoints.load_or_train(tmp_path, config, functools.partial(train.identity, CLASSIFIER),
                              lambda: model, lambda: (_ for _ in ()).throw(
                                  RuntimeError('retrain')))


@pytest.mark.parametrize('kind', sorted(train.KINDS))
def test_every_kind_refuses_zero_steps(kind, tiny_mnist):
  config = train.KINDS[kind].defaults()
  config.batch_size = 10_000_000  # more than the training set: no step at all
  with pytest.raises(TrainingError, match='no step at all'):
    train.fit(train.KINDS[kind], config, tiny_mnist)


def test_unknown_and_declared_model_settings(tmp_path, mnist_dir):
  config = train_experiment.classifier_config('smoke')
  config.unlock()
  config.colour = 'blue'
  with pytest.raises(ConfigError, match="unknown classifier setting.*colour"):
    train.get_classifier(config, io.Workspace(tmp_path))
  result = run_cli('--experiment=train:smoke', '--config.classifier.model.kernel_size=5',
                   '--config.classifier.epochs=0', f'--workdir={tmp_path}',
                   env_data_dir=mnist_dir)
  assert_one_line_error(result, 'no step at all')  # the key is declared: accepted


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


def test_committed_generating_classifier_is_used_and_reads_at_its_recorded_accuracy(
    tmp_path, mnist_dir, monkeypatch):
  # `pairs` takes its generating classifier from pretrained/, so a fresh clone
  # trains nothing; the restored weights must be the model whose accuracy was saved.
  config = train_experiment.classifier_config('open_set')
  assert (checkpoints.PRETRAINED_DIR / config.name / 'config.json').is_file()
  monkeypatch.setattr(train, 'fit', lambda *a: pytest.fail('retrained the committed model'))
  workspace = io.Workspace(tmp_path, str(mnist_dir))
  model, metrics = train.get_model('classifier', config, workspace)
  recomputed = train.accuracy(*nnx.split(model), workspace.mnist.test_images,
                              workspace.mnist.test_labels)
  assert recomputed == pytest.approx(metrics['test_accuracy'], abs=2e-4)  # ≤ 2 images
  assert metrics['test_accuracy'] > 0.99
  assert not (tmp_path / 'models' / config.name).exists()  # nothing copied or trained


class _ZeroVelocity(nnx.Module):
  """A flow model that predicts no velocity: the flow loss is then the mean of
  (ε − x)², which shows which digits and noise the loss drew."""

  def __call__(self, noisy, times, labels):
    return jnp.zeros_like(noisy)


@pytest.mark.parametrize('rotation_degrees,scale_range', [(0.0, 0.0), (10.0, 0.1)])
def test_flow_loss_augments_digits_with_a_key_of_its_own(rotation_degrees, scale_range):
  images = jnp.zeros((16, 28, 28)).at[:, 4:24, 12:16].set(1.0)  # upright bars, a "1"
  labels = jnp.arange(16) % 10
  key = jax.random.key(3)
  loss = train.FlowMatchingLoss(0.1, rotation_degrees, scale_range)
  graphdef, params = nnx.split(_ZeroVelocity())
  value, _ = jax.jit(lambda examples, key: loss(graphdef, params, examples, key, 0.0))(
      (images, labels), key)
  # The noise key is the first of three, as before augmentation existed, so models
  # trained without it are unchanged; the warp has a fourth key of its own.
  noise = jax.random.normal(jax.random.split(key, 3)[0], images.shape)
  digits = images
  if rotation_degrees:
    digits = views.random_affine(jax.random.split(key, 4)[3], images, rotation_degrees,
                                 scale_range)
    assert not np.allclose(digits, images, atol=0.1)  # the bars really turned
  expected = jnp.mean((noise - models.to_signal(digits)) ** 2)
  np.testing.assert_allclose(value, expected, rtol=1e-5)
