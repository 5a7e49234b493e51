"""Network definitions (Flax NNX) and their pure forward passes.

The classifier has no batch-coupled layers (no BatchNorm, no dropout), so its
forward pass is the same pure function of (parameters, images) in training, under
`vmap` over single images, and under `grad` with respect to the input image.
"""

from typing import Sequence

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from flipnum_jax.errors import ConfigError


class Classifier(nnx.Module):
  """A small CNN: strided 4×4 convolutions, then two dense layers.

  Stride-2 convolutions instead of convolution + pooling: the same accuracy on MNIST
  at a third of the FLOPs, and XLA's CPU backend runs them ~3.5× faster (measured
  here: 30 ms vs 103 ms per batch-128 training step against the Flax MNIST example's
  conv-pool network).
  """

  def __init__(self, conv_features: Sequence[int], hidden: int, kernel_size: int = 4,
               num_classes: int = 10, *, rngs: nnx.Rngs):
    channels = (1, *conv_features)
    self.convs = nnx.List([
        nnx.Conv(c_in, c_out, kernel_size=(kernel_size, kernel_size), strides=2,
                 rngs=rngs)
        for c_in, c_out in zip(channels[:-1], channels[1:])
    ])
    side = 28
    for _ in conv_features:
      side = -(-side // 2)  # 'SAME' padding: ceil(side / stride)
    self.hidden = nnx.Linear(side * side * channels[-1], hidden, rngs=rngs)
    self.out = nnx.Linear(hidden, num_classes, rngs=rngs)

  def penultimate(self, images: jax.Array) -> jax.Array:
    """Features before the last layer, (N, hidden), for images (N, 28, 28)."""
    x = images[..., None]
    for conv in self.convs:
      x = nnx.relu(conv(x))
    x = x.reshape(x.shape[0], -1)
    return nnx.relu(self.hidden(x))

  def __call__(self, images: jax.Array) -> jax.Array:
    """Logits (N, num_classes) for float images (N, 28, 28) in [0, 1]."""
    return self.out(self.penultimate(images))


class MLP(nnx.Module):
  """A multilayer perceptron on the 784 pixels: no convolutions, no weight sharing."""

  def __init__(self, hidden: Sequence[int], *, rngs: nnx.Rngs):
    sizes = (28 * 28, *hidden)
    self.layers = nnx.List([nnx.Linear(n_in, n_out, rngs=rngs)
                            for n_in, n_out in zip(sizes[:-1], sizes[1:])])
    self.out = nnx.Linear(sizes[-1], 10, rngs=rngs)

  def penultimate(self, images: jax.Array) -> jax.Array:
    x = images.reshape(images.shape[0], -1)
    for layer in self.layers:
      x = nnx.relu(layer(x))
    return x

  def __call__(self, images: jax.Array) -> jax.Array:
    return self.out(self.penultimate(images))


class ProductOfExperts(nnx.Module):
  """Two classifiers over the same classes as one: log p_first + weight · log
  p_second, which a softmax turns into p ∝ p_first · p_second^weight. Guiding by
  it pushes towards what both models read (the generating classifier's digits and
  what blind readers name, for `pairs`' reader guide)."""

  def __init__(self, first: nnx.Module, second: nnx.Module, weight: float):
    self.first, self.second, self.weight = first, second, weight

  def __call__(self, images: jax.Array) -> jax.Array:
    return (jax.nn.log_softmax(self.first(images))
            + self.weight * jax.nn.log_softmax(self.second(images)))


def classifier_spec() -> ml_collections.ConfigDict:
  """A classifier's architecture, every knob declared: kind 'cnn' (`Classifier`)
  or 'mlp' (`MLP`, whose `hidden` is a tuple of layer widths and which uses no other
  field); a CNN with num_classes 11 has the open-set "not one digit" class 10."""
  return ml_collections.ConfigDict({'kind': 'cnn', 'conv_features': (32, 64),
                                    'hidden': 256, 'kernel_size': 4, 'num_classes': 10})


CLASSIFIER_KINDS = ('cnn', 'mlp')


def make_classifier(model_config: ml_collections.ConfigDict,
                    key: jax.Array) -> Classifier | MLP:
  """The network a `classifier_spec` describes."""
  rngs = nnx.Rngs(params=key)
  if model_config.kind not in CLASSIFIER_KINDS:
    raise ConfigError(f'model.kind must be one of {CLASSIFIER_KINDS}, not '
                      f'{model_config.kind!r}')
  if model_config.kind == 'mlp':
    return MLP(tuple(model_config.hidden), rngs=rngs)
  return Classifier(tuple(model_config.conv_features), model_config.hidden,
                    model_config.kernel_size, model_config.num_classes, rngs=rngs)


def apply(graphdef: nnx.GraphDef, params: nnx.State, images: jax.Array) -> jax.Array:
  """Logits of the model (graphdef, params) for images (N, 28, 28): a pure function."""
  return nnx.merge(graphdef, params)(images)


def num_params(params: nnx.State) -> int:
  return sum(int(jnp.size(x)) for x in jax.tree.leaves(params))


class VAE(nnx.Module):
  """A variational autoencoder on the 784 pixels (MLP encoder and decoder): the
  learned prior whose decoder keeps latent ascent on the manifold of pen strokes."""

  def __init__(self, hidden: int, latent: int, *, rngs: nnx.Rngs):
    self.encoder = nnx.Linear(28 * 28, hidden, rngs=rngs)
    self.mean = nnx.Linear(hidden, latent, rngs=rngs)
    self.log_variance = nnx.Linear(hidden, latent, rngs=rngs)
    self.decoder_hidden = nnx.Linear(latent, hidden, rngs=rngs)
    self.decoder_out = nnx.Linear(hidden, 28 * 28, rngs=rngs)

  def encode(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Posterior mean and log-variance (N, latent) of images (N, 28, 28)."""
    h = nnx.relu(self.encoder(images.reshape(images.shape[0], -1)))
    return self.mean(h), self.log_variance(h)

  def decode_logits(self, latents: jax.Array) -> jax.Array:
    """Bernoulli logits (N, 28, 28) of each pixel being ink."""
    h = nnx.relu(self.decoder_hidden(latents))
    return self.decoder_out(h).reshape(-1, 28, 28)

  def decode(self, latents: jax.Array) -> jax.Array:
    return jax.nn.sigmoid(self.decode_logits(latents))


def vae_spec() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({'hidden': 400, 'latent': 16})


def make_vae(model_config: ml_collections.ConfigDict, key: jax.Array) -> VAE:
  return VAE(model_config.hidden, model_config.latent, rngs=nnx.Rngs(params=key))


NO_CLASS = 10  # the U-Net's label for "any digit" (classifier-free guidance)


def to_signal(images: jax.Array) -> jax.Array:
  """Images in [0, 1] → the flow model's data space [−1, 1]."""
  return 2.0 * images - 1.0


def to_images(signal: jax.Array) -> jax.Array:
  """The flow model's data space → images in [0, 1] (clipped)."""
  return jnp.clip((signal + 1.0) / 2.0, 0.0, 1.0)


def space_to_depth(images: jax.Array) -> jax.Array:
  """(N, 28, 28) → (N, 14, 14, 4): each 2×2 block of pixels becomes 4 channels."""
  n, height, width = images.shape
  blocks = images.reshape(n, height // 2, 2, width // 2, 2)
  return blocks.transpose(0, 1, 3, 2, 4).reshape(n, height // 2, width // 2, 4)


def depth_to_space(features: jax.Array) -> jax.Array:
  """The inverse of `space_to_depth`: (N, 14, 14, 4) → (N, 28, 28)."""
  n, height, width, _ = features.shape
  blocks = features.reshape(n, height, width, 2, 2)
  return blocks.transpose(0, 1, 3, 2, 4).reshape(n, height * 2, width * 2)


class ResBlock(nnx.Module):
  """GroupNorm–SiLU–conv twice, with the conditioning vector added in between."""

  def __init__(self, c_in: int, c_out: int, cond_dim: int, *, rngs: nnx.Rngs):
    self.norm1 = nnx.GroupNorm(c_in, num_groups=8, rngs=rngs)
    self.conv1 = nnx.Conv(c_in, c_out, kernel_size=(3, 3), rngs=rngs)
    self.cond = nnx.Linear(cond_dim, c_out, rngs=rngs)
    self.norm2 = nnx.GroupNorm(c_out, num_groups=8, rngs=rngs)
    self.conv2 = nnx.Conv(c_out, c_out, kernel_size=(3, 3), rngs=rngs)
    self.skip = (nnx.Conv(c_in, c_out, kernel_size=(1, 1), rngs=rngs)
                 if c_in != c_out else None)

  def __call__(self, x: jax.Array, cond: jax.Array) -> jax.Array:
    h = self.conv1(nnx.silu(self.norm1(x)))
    h = h + self.cond(cond)[:, None, None, :]
    h = self.conv2(nnx.silu(self.norm2(h)))
    return h + (self.skip(x) if self.skip is not None else x)


class UNet(nnx.Module):
  """A small class-conditional U-Net for flow matching on 28×28 digits.

  The image is first folded into 14×14×4 (space-to-depth), so every convolution
  runs at 14×14 or 7×7: XLA's CPU convolutions are the cost of training here, and
  full-resolution ones would quadruple it. Label 10 is the "no class" token that
  classifier-free guidance needs.
  """

  def __init__(self, features: int, cond_dim: int, *, rngs: nnx.Rngs):
    wide = 2 * features
    self.time_in = nnx.Linear(cond_dim, cond_dim, rngs=rngs)
    self.time_out = nnx.Linear(cond_dim, cond_dim, rngs=rngs)
    self.label = nnx.Embed(11, cond_dim, rngs=rngs)
    self.conv_in = nnx.Conv(4, features, kernel_size=(3, 3), rngs=rngs)
    self.down = ResBlock(features, features, cond_dim, rngs=rngs)
    self.downsample = nnx.Conv(features, wide, kernel_size=(3, 3), strides=2, rngs=rngs)
    self.middle1 = ResBlock(wide, wide, cond_dim, rngs=rngs)
    self.middle2 = ResBlock(wide, wide, cond_dim, rngs=rngs)
    self.upsample = nnx.Conv(wide, features, kernel_size=(3, 3), rngs=rngs)
    self.up = ResBlock(2 * features, features, cond_dim, rngs=rngs)
    self.norm_out = nnx.GroupNorm(features, num_groups=8, rngs=rngs)
    self.conv_out = nnx.Conv(features, 4, kernel_size=(3, 3), rngs=rngs)
    self.cond_dim = cond_dim

  def __call__(self, images: jax.Array, times: jax.Array, labels: jax.Array) -> jax.Array:
    """The velocity (N, 28, 28) at noisy images (N, 28, 28), times (N,) in [0, 1]
    and labels (N,) in 0–10 (10: unconditional)."""
    half = self.cond_dim // 2
    frequencies = jnp.exp(-jnp.log(1000.0) * jnp.arange(half) / half)
    angles = 1000.0 * times[:, None] * frequencies
    time_features = jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], -1)
    cond = self.time_out(nnx.silu(self.time_in(time_features))) + self.label(labels)
    x = self.conv_in(space_to_depth(images))
    skip = self.down(x, cond)
    h = nnx.relu(self.downsample(skip))
    h = self.middle2(self.middle1(h, cond), cond)
    h = jax.image.resize(h, (h.shape[0], 14, 14, h.shape[-1]), 'nearest')
    h = self.up(jnp.concatenate([self.upsample(h), skip], -1), cond)
    return depth_to_space(self.conv_out(nnx.silu(self.norm_out(h))))


def unet_spec() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({'features': 48, 'cond_dim': 128})


def make_unet(model_config: ml_collections.ConfigDict, key: jax.Array) -> UNet:
  return UNet(model_config.features, model_config.cond_dim, rngs=nnx.Rngs(params=key))
