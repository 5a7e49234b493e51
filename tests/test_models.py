import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from experiments import train as train_experiment
from flipnum_jax import models


def default_model(seed=0):
  config = train_experiment.classifier_config()
  return models.make_classifier(config.model, jax.random.key(seed))


def test_output_shape_and_parameter_count():
  model = default_model()
  logits = model(jnp.zeros((3, 28, 28)))
  assert logits.shape == (3, 10)
  _, params = nnx.split(model)
  conv1 = 4 * 4 * 1 * 32 + 32
  conv2 = 4 * 4 * 32 * 64 + 64
  hidden = 7 * 7 * 64 * 256 + 256
  out = 256 * 10 + 10
  assert models.num_params(params) == conv1 + conv2 + hidden + out


def test_pure_forward_under_jit_vmap_and_input_grad():
  model = default_model()
  graphdef, params = nnx.split(model)
  images = jax.random.uniform(jax.random.key(1), (4, 28, 28))
  batched = jax.jit(models.apply, static_argnums=0)(graphdef, params, images)
  np.testing.assert_allclose(batched, model(images), rtol=1e-5, atol=1e-5)

  def single_logit(image, label):  # one image at a time, as image ascent uses it
    return models.apply(graphdef, params, image[None])[0, label]
  labels = jnp.arange(4)
  per_image = jax.jit(jax.vmap(single_logit))(images, labels)
  np.testing.assert_allclose(per_image, batched[jnp.arange(4), labels], rtol=1e-5, atol=1e-5)
  grads = jax.jit(jax.vmap(jax.grad(single_logit)))(images, labels)
  assert grads.shape == images.shape
  assert np.all(np.isfinite(grads)) and np.any(grads != 0)
  # Each image's gradient depends on that image only: no batch coupling.
  other = images.at[1:].set(0.0)
  np.testing.assert_allclose(
      jax.jit(jax.vmap(jax.grad(single_logit)))(other, labels)[0], grads[0], rtol=1e-5, atol=1e-6)


def test_same_seed_same_parameters():
  same = [nnx.split(default_model(7))[1] for _ in range(2)]
  other = nnx.split(default_model(8))[1]
  for a, b, c in zip(jax.tree.leaves(same[0]), jax.tree.leaves(same[1]), jax.tree.leaves(other)):
    np.testing.assert_array_equal(a, b)
  assert any(not np.array_equal(a, c) for a, c in
             zip(jax.tree.leaves(same[0]), jax.tree.leaves(other)))


def test_product_of_experts_multiplies_the_two_models_probabilities_under_jit():
  spec = models.classifier_spec()
  spec.conv_features, spec.hidden, spec.num_classes = (4, 8), 16, 11
  first = models.make_classifier(spec, jax.random.key(1))
  second = models.make_classifier(spec, jax.random.key(2))
  images = jax.random.uniform(jax.random.key(3), (5, 28, 28))
  p_first = np.asarray(jax.nn.softmax(first(images)), np.float64)
  p_second = np.asarray(jax.nn.softmax(second(images)), np.float64)
  product = models.ProductOfExperts(first, second, 2.0)
  logits = jax.jit(models.apply, static_argnums=0)(*nnx.split(product), images)
  # A softmax of its logits is p_first · p_second², renormalized over the classes.
  expected = p_first * p_second ** 2
  expected /= expected.sum(1, keepdims=True)
  np.testing.assert_allclose(jax.nn.softmax(logits), expected, rtol=1e-4, atol=1e-6)
