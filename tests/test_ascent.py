import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax import nnx

from experiments import train as train_experiment
from flipnum_jax import models
from flipnum_jax import objectives
from flipnum_jax.errors import ConfigError
from flipnum_jax.generators import ascent


@pytest.fixture(scope='module')
def classifier():
  config = train_experiment.classifier_config('smoke')
  return nnx.split(models.make_classifier(config.model, jax.random.key(0)))


def test_batch_equals_each_pair_alone_and_scores_rise(classifier):
  graphdef, params = classifier
  pairs = jnp.array([[3, 7], [6, 9], [0, 0], [1, 8]])
  start = jax.random.uniform(jax.random.key(2), (4, 28, 28))
  kwargs = dict(objective=objectives.FlipObjective(), optimizer=optax.adam(0.05), steps=25)
  keys = jax.random.split(jax.random.key(5), 4)
  images, scores = ascent.ascend(graphdef, params, start, pairs, keys, **kwargs)
  assert images.shape == (4, 28, 28) and scores.shape == (25, 4)
  assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
  for i in range(4):
    alone, _ = ascent.ascend(graphdef, params, start[i:i + 1], pairs[i:i + 1],
                             keys[i:i + 1], **kwargs)
    np.testing.assert_allclose(alone[0], images[i], atol=1e-5)
  final = jax.vmap(objectives.FlipObjective(), in_axes=(None, None, 0, 0, 0))(
      graphdef, params, images, pairs, keys)
  assert np.all(np.asarray(final) > np.asarray(scores[0]) + 0.5)
  assert np.all(np.asarray(scores[-1]) > np.asarray(scores[0]))


def test_ascent_is_traced_once_per_shape(classifier):
  graphdef, params = classifier
  traces = []

  def counting_objective(graphdef, params, image, target, key):
    traces.append(image.shape)  # runs only while JAX traces
    return objectives.digit_score(graphdef, params, image, target, key)

  kwargs = dict(objective=counting_objective, optimizer=optax.sgd(0.1), steps=3)
  for seed in range(3):  # new values, same shapes: no new trace
    start = jax.random.uniform(jax.random.key(seed), (5, 28, 28))
    ascent.ascend(graphdef, params, start, jnp.arange(5), jax.random.split(jax.random.key(seed), 5),
                  **kwargs)
  assert len(traces) == 1
  ascent.ascend(graphdef, params, jnp.zeros((2, 28, 28)), jnp.arange(2),
                jax.random.split(jax.random.key(0), 2), **kwargs)
  assert len(traces) == 2


def test_same_inputs_give_bit_identical_images(classifier):
  graphdef, params = classifier
  start = jax.random.uniform(jax.random.key(3), (3, 28, 28))
  kwargs = dict(objective=objectives.digit_score, optimizer=optax.adam(0.01), steps=10)
  keys = jax.random.split(jax.random.key(4), 3)
  first, _ = ascent.ascend(graphdef, params, start, jnp.arange(3), keys, **kwargs)
  second, _ = ascent.ascend(graphdef, params, start, jnp.arange(3), keys, **kwargs)
  np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize('optimizer, learning_rate, steps, message', [
    ('adam', 0.01, 0, 'steps must be positive'),
    ('adam', 0.01, -3, 'steps must be positive'),
    ('adam', float('nan'), 10, 'learning_rate must be finite and positive'),
    ('adam', float('inf'), 10, 'learning_rate must be finite and positive'),
    ('adam', 0.0, 10, 'learning_rate must be finite and positive'),
    ('lbfgs', 0.01, 10, 'optimizer must be one of'),
])
def test_bad_ascent_configs_are_refused(optimizer, learning_rate, steps, message):
  config = ml_collections.ConfigDict(
      {'optimizer': optimizer, 'learning_rate': learning_rate, 'steps': steps})
  with pytest.raises(ConfigError, match=message):
    ascent.make_optimizer(config)


def test_latent_ascent_draws_through_the_decoder_and_raises_the_score(classifier):
  graphdef, params = classifier
  config = ml_collections.ConfigDict({'hidden': 32, 'latent': 4})
  vae = models.make_vae(config, jax.random.key(0))
  decoder, decoder_params = nnx.split(vae)
  latents = jax.random.normal(jax.random.key(1), (3, 4))
  pairs = jnp.array([[3, 7], [6, 9], [1, 1]])
  keys = jax.random.split(jax.random.key(2), 3)
  images, scores = ascent.ascend(
      graphdef, params, latents, pairs, keys, decoder_params,
      objective=objectives.FlipObjective(), optimizer=optax.adam(0.1), steps=20,
      decoder=decoder, prior_weight=0.01)
  assert images.shape == (3, 28, 28) and scores.shape == (20, 3)
  assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0  # sigmoid output
  assert np.all(np.asarray(scores[-1]) > np.asarray(scores[0]))
  assert not np.allclose(images[0], vae.decode(latents[:1])[0], atol=1e-3)  # it moved
