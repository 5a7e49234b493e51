import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from experiments import train as train_experiment
from flipnum_jax import models
from flipnum_jax import objectives


def test_rot180_is_an_involution_and_matches_numpy():
  images = np.random.default_rng(0).random((3, 28, 28)).astype(np.float32)
  turned = jax.jit(objectives.rot180)(images)
  np.testing.assert_array_equal(turned[1], np.rot90(images[1], 2))
  np.testing.assert_array_equal(turned, np.rot90(images, 2, axes=(1, 2)))
  np.testing.assert_array_equal(objectives.rot180(turned), images)


def test_scores_are_the_log_probabilities_of_both_views():
  config = train_experiment.classifier_config('smoke')
  graphdef, params = nnx.split(models.make_classifier(config.model, jax.random.key(0)))
  image = jax.random.uniform(jax.random.key(1), (28, 28))
  log_probs_up = jax.nn.log_softmax(models.apply(graphdef, params, image[None]))[0]
  log_probs_turned = jax.nn.log_softmax(
      models.apply(graphdef, params, np.rot90(np.asarray(image), 2)[None]))[0]
  pair_score = jax.jit(objectives.pair_score, static_argnums=0)
  digit_score = jax.jit(objectives.digit_score, static_argnums=0)
  np.testing.assert_allclose(pair_score(graphdef, params, image, jnp.array([3, 7])),
                             log_probs_up[3] + log_probs_turned[7], rtol=1e-5)
  np.testing.assert_allclose(digit_score(graphdef, params, image, 4), log_probs_up[4],
                             rtol=1e-5)
