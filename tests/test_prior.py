import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from experiments import pairs_vae
from flipnum_jax import checkpoints
from flipnum_jax import models
from flipnum_jax import train
from flipnum_jax.errors import TrainingError

VAE = train.KINDS['vae']


def test_vae_shapes_and_training_lowers_the_loss(tiny_mnist, tmp_path):
  config = pairs_vae.get_config('smoke').generator.model
  config.model.hidden = 64
  config.epochs = 1
  vae = models.make_vae(config.model, jax.random.key(0))
  mean, log_variance = vae.encode(jnp.zeros((5, 28, 28)))
  assert mean.shape == log_variance.shape == (5, config.model.latent)
  drawn = vae.decode(mean)
  assert drawn.shape == (5, 28, 28) and float(drawn.min()) >= 0 and float(drawn.max()) <= 1

  images = (jnp.asarray(tiny_mnist.test_images / 255.0, jnp.float32),)
  before, _ = train.negative_elbo(*nnx.split(vae), images, jax.random.key(0))
  config.epochs = 3
  trained, metrics = train.fit(VAE, config, tiny_mnist)
  after, _ = train.negative_elbo(*nnx.split(trained), images, jax.random.key(0))
  assert float(after) < 0.8 * float(before)
  hidden, latent = 64, config.model.latent  # encoder, mean, log-variance, decoder
  assert metrics['num_params'] == ((784 * hidden + hidden) + 2 * (hidden * latent + latent)
                                   + (latent * hidden + hidden) + (hidden * 784 + 784))
  assert metrics['test_negative_elbo'] == pytest.approx(float(train.negative_elbo(
      *nnx.split(trained), (images[0][:1000],), jax.random.key(0))[0]), rel=1e-5)

  checkpoints.save(tmp_path, trained, config, metrics)
  restored, _ = checkpoints.load(tmp_path, lambda: models.make_vae(config.model,
                                                                   jax.random.key(5)))
  np.testing.assert_array_equal(restored.decode(mean), trained.decode(mean))


def test_vae_divergence_is_a_clear_error(tiny_mnist):
  config = pairs_vae.get_config('smoke').generator.model
  config.learning_rate = 1e6
  with pytest.raises(TrainingError, match='non-finite.*lower its learning_rate'):
    train.fit(VAE, config, tiny_mnist)
