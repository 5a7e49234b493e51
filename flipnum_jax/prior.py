"""The learned prior: a VAE trained on MNIST digits upright and turned 180°.

Latent ascent (see `ascent.ascend` with a decoder) moves through its latent space,
so every candidate is something the decoder draws: pen strokes, not pixel noise.
Cached like the classifiers, under `<workdir>/models/<name>/`.
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
from flipnum_jax import train
from flipnum_jax.errors import TrainingError


def negative_elbo(graphdef: nnx.GraphDef, params: nnx.State, images: jax.Array,
                  key: jax.Array) -> jax.Array:
  """Mean over the batch of −ELBO: Bernoulli reconstruction + KL to N(0, I)."""
  vae = nnx.merge(graphdef, params)
  mean, log_variance = vae.encode(images)
  latents = mean + jnp.exp(0.5 * log_variance) * jax.random.normal(key, mean.shape)
  reconstruction = optax.sigmoid_binary_cross_entropy(vae.decode_logits(latents),
                                                      images).sum((1, 2))
  kl = 0.5 * jnp.sum(jnp.exp(log_variance) + mean ** 2 - 1.0 - log_variance, axis=1)
  return jnp.mean(reconstruction + kl)


@functools.partial(jax.jit, static_argnames=('graphdef', 'optimizer'),
                   donate_argnames=('params', 'opt_state'))
def vae_step(graphdef: nnx.GraphDef, optimizer: optax.GradientTransformation,
             params: nnx.State, opt_state: optax.OptState, images: jax.Array,
             batch: jax.Array, key: jax.Array) -> tuple[nnx.State, optax.OptState, jax.Array]:
  loss, grads = jax.value_and_grad(negative_elbo, argnums=1)(
      graphdef, params, images[batch], key)
  updates, opt_state = optimizer.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state, loss


def train_vae(config: ml_collections.ConfigDict,
              mnist: data.Mnist) -> tuple[models.VAE, dict[str, Any]]:
  """Trains the VAE on every training digit and its 180° turn."""
  init_key, data_key = jax.random.split(jax.random.key(config.seed))
  graphdef, params = nnx.split(models.make_vae(config.model, init_key))
  upright = data.to_float(mnist.train_images)
  images = jnp.asarray(np.concatenate([upright, upright[:, ::-1, ::-1]]))
  optimizer = optax.adam(config.learning_rate)
  opt_state = optimizer.init(params)
  start = time.perf_counter()
  for epoch, epoch_key in enumerate(jax.random.split(data_key, config.epochs), 1):
    losses = []
    for batch, step_key in zip(*train.epoch_batches(epoch_key, images.shape[0],
                                                    config.batch_size)):
      params, opt_state, loss = vae_step(graphdef, optimizer, params, opt_state, images,
                                         batch, step_key)
      losses.append(loss)
    mean_loss = float(np.mean(np.asarray(losses)))
    if not np.isfinite(mean_loss):
      raise TrainingError(f'training {config.name} diverged at epoch {epoch}: the loss '
                          'became non-finite; lower prior.learning_rate')
    elapsed = time.perf_counter() - start
    logging.info('%s epoch %d/%d  −ELBO %.2f nats  ETA %.0fs', config.name, epoch,
                 config.epochs, mean_loss, elapsed / epoch * (config.epochs - epoch))
  test = jnp.asarray(data.to_float(mnist.test_images[:1000]))
  metrics = {'test_negative_elbo': float(negative_elbo(graphdef, params, test,
                                                       jax.random.key(0))),
             'train_seconds': time.perf_counter() - start,
             'num_params': models.num_params(params)}
  return nnx.merge(graphdef, params), metrics


def get_vae(config: ml_collections.ConfigDict, workdir: str,
            data_dir: str | None) -> models.VAE:
  """The VAE `config` describes: loaded from the workdir, or trained and saved."""
  folder = io.model_dir(workdir, config.name)
  return checkpoints.load_or_train(
      folder, config, lambda: models.make_vae(config.model, jax.random.key(0)),
      lambda: train_vae(config, data.load_mnist(data_dir)))[0]
