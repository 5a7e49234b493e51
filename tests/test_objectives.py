import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from experiments import train as train_experiment
from flipnum_jax import models
from flipnum_jax import objectives
from flipnum_jax import views


@pytest.fixture(scope='module')
def classifier():
  config = train_experiment.classifier_config('smoke')
  return nnx.split(models.make_classifier(config.model, jax.random.key(0)))


def _log_probs(graphdef, params, image):
  return jax.nn.log_softmax(models.apply(graphdef, params, image[None]))[0]


def test_default_flip_objective_is_the_blogs_score(classifier):
  graphdef, params = classifier
  image = jax.random.uniform(jax.random.key(1), (28, 28))
  up = _log_probs(graphdef, params, image)
  turned = _log_probs(graphdef, params, jnp.asarray(np.rot90(np.asarray(image), 2)))
  blog = jax.jit(objectives.FlipObjective().__call__, static_argnums=0)
  key = jax.random.key(0)
  np.testing.assert_allclose(blog(graphdef, params, image, jnp.array([3, 7]), key),
                             up[3] + turned[7], rtol=1e-5)
  digit_score = jax.jit(objectives.digit_score, static_argnums=0)
  np.testing.assert_allclose(digit_score(graphdef, params, image, 4), up[4], rtol=1e-5)


def test_flip_objective_reads_an_open_set_classifier_over_all_its_classes():
  # The `pairs` generator has an 11th class ("two digits"): log p(a) must be
  # normalized over all 11 (the per-view mean once assumed 10 classes and failed).
  config = train_experiment.open_set(train_experiment.classifier_config('smoke'))
  assert config.model.num_classes == 11 and config.name == 'classifier_smoke_open_set'
  graphdef, params = nnx.split(models.make_classifier(config.model, jax.random.key(3)))
  image = jax.random.uniform(jax.random.key(4), (28, 28))
  up = _log_probs(graphdef, params, image)
  turned = _log_probs(graphdef, params, views.rot180(image))
  assert up.shape == (11,)
  view_scores = jax.jit(objectives.FlipObjective().view_scores, static_argnums=0)
  np.testing.assert_allclose(
      view_scores(graphdef, params, image, jnp.array([3, 7]), jax.random.key(0)),
      [up[3], turned[7]], rtol=1e-5)


def test_softmin_follows_the_weaker_view_and_penalties_subtract(classifier):
  graphdef, params = classifier
  image = jax.random.uniform(jax.random.key(2), (28, 28))
  pair, key = jnp.array([2, 5]), jax.random.key(0)
  scores = objectives.FlipObjective().view_scores(graphdef, params, image, pair, key)
  softmin = objectives.FlipObjective(softmin_temperature=0.1)(graphdef, params, image,
                                                              pair, key)
  assert float(softmin) <= float(scores.min()) + 1e-6
  assert float(softmin) >= float(scores.min()) - 0.1 * np.log(2) - 1e-6
  plain = objectives.FlipObjective()(graphdef, params, image, pair, key)
  penalised = objectives.FlipObjective(tv_weight=2.0, l2_weight=3.0)(
      graphdef, params, image, pair, key)
  expected = (2.0 * objectives.total_variation(image) + 3.0 * jnp.mean(image ** 2))
  np.testing.assert_allclose(plain - penalised, expected, rtol=1e-5)


def test_blur_keeps_ink_and_lowers_total_variation():
  image = jnp.zeros((28, 28)).at[10:18, 12:16].set(1.0)
  blurred = objectives.gaussian_blur(image, 1.0)
  np.testing.assert_allclose(blurred.sum(), image.sum(), rtol=1e-4)  # away from edges
  assert float(objectives.total_variation(blurred)) < float(objectives.total_variation(image))


def test_crisp_thresholds_forwards_and_passes_gradients_back():
  image = jnp.array([[0.2, 0.7], [0.5, 0.9]])
  np.testing.assert_array_equal(objectives.crisp(image), [[0.0, 1.0], [0.0, 1.0]])
  grad = jax.grad(lambda x: jnp.sum(objectives.crisp(x) * jnp.arange(4.0).reshape(2, 2)))(image)
  np.testing.assert_array_equal(grad, jnp.arange(4.0).reshape(2, 2))
