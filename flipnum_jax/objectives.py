"""Pure objectives for image ascent and guidance: flip scores and regularizers.

Every objective takes the classifier as (graphdef, params), one image (28, 28), its
target and a random key (for objectives that sample transformations); `jax.vmap`
lifts them to batches.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from flipnum_jax import models
from flipnum_jax import views
from flipnum_jax.errors import ConfigError


def view_log_probs(graphdef: nnx.GraphDef, params: nnx.State,
                   image: jax.Array) -> jax.Array:
  """Log-probabilities (2, classes) of `image` upright (row 0) and turned (row 1)."""
  both = jnp.stack([image, views.rot180(image)])  # one forward pass for both views
  return jax.nn.log_softmax(models.apply(graphdef, params, both))


def pair_log_probs(graphdef: nnx.GraphDef, params: nnx.State, images: jax.Array,
                   pairs: jax.Array) -> jax.Array:
  """(N, 2): log p(a | x) and log p(b | rot180 x) for images (N, 28, 28) and their
  pairs (N, 2) of (a, b)."""
  log_probs = jax.vmap(view_log_probs, in_axes=(None, None, 0))(graphdef, params, images)
  return jnp.take_along_axis(log_probs, pairs[:, :, None], axis=2)[..., 0]


def digit_score(graphdef: nnx.GraphDef, params: nnx.State, image: jax.Array,
                digit: jax.Array, key: jax.Array | None = None) -> jax.Array:
  """log p(digit | x)."""
  del key  # deterministic
  return jax.nn.log_softmax(models.apply(graphdef, params, image[None]))[0, digit]


def total_variation(image: jax.Array) -> jax.Array:
  """Mean absolute difference between neighbouring pixels."""
  return (jnp.mean(jnp.abs(jnp.diff(image, axis=0))) +
          jnp.mean(jnp.abs(jnp.diff(image, axis=1))))


def gaussian_blur(image: jax.Array, sigma: float) -> jax.Array:
  """Separable Gaussian blur (3σ radius, zero padding)."""
  radius = max(1, int(3 * sigma + 0.5))
  offsets = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
  kernel = jnp.exp(-0.5 * (offsets / sigma) ** 2)
  kernel = kernel / kernel.sum()
  rows = jax.vmap(lambda r: jnp.convolve(r, kernel, mode='same'))(image)
  return jax.vmap(lambda c: jnp.convolve(c, kernel, mode='same'), 1, 1)(rows)


def crisp(image: jax.Array) -> jax.Array:
  """Ink or paper (threshold ½) forwards, identity backwards (straight-through)."""
  return image + jax.lax.stop_gradient(jnp.where(image > 0.5, 1.0, 0.0) - image)


class FlipObjective(NamedTuple):
  """The readable-flip objective; its fields are static settings (hashable, so the
  objective itself can be a static argument of `jax.jit`).

  score = combine(mean log p(a | T(x)), mean log p(b | T'(rot180 x)))
          − tv_weight · TV(x) − l2_weight · mean(x²) − blur_weight · mean((x − blur(x))²)
  where T, T' are `samples` random transformations per view (expectation over
  transformations) and combine is the sum, or a soft minimum at `softmin_temperature`
  > 0 so that the weaker reading of each pair gets most of the push.
  """
  softmin_temperature: float = 0.0
  tv_weight: float = 0.0
  l2_weight: float = 0.0
  blur_weight: float = 0.0
  blur_sigma: float = 1.0
  samples: int = 1
  jitter: float = 0.0
  rotation_degrees: float = 0.0
  scale_range: float = 0.0
  crisp: bool = False

  def view_scores(self, graphdef: nnx.GraphDef, params: nnx.State, image: jax.Array,
                  pair: jax.Array, key: jax.Array) -> jax.Array:
    """(2,): mean log p(a) upright and mean log p(b) turned, over transformations."""
    seen = crisp(image) if self.crisp else image
    both = jnp.stack([seen, views.rot180(seen)])
    if self.jitter or self.rotation_degrees or self.scale_range:
      keys = jax.random.split(key, 2 * self.samples)
      both = jnp.repeat(both, self.samples, axis=0)
      both = jax.vmap(views.random_transform, in_axes=(0, 0, None, None, None))(
          keys, both, self.jitter, self.rotation_degrees, self.scale_range)
    log_probs = jax.nn.log_softmax(models.apply(graphdef, params, both))
    # (2·samples, classes) → per view, the mean over its transformed copies.
    log_probs = log_probs.reshape(2, -1, log_probs.shape[-1]).mean(1)
    return jnp.stack([log_probs[0, pair[0]], log_probs[1, pair[1]]])

  def __call__(self, graphdef: nnx.GraphDef, params: nnx.State, image: jax.Array,
               pair: jax.Array, key: jax.Array) -> jax.Array:
    scores = self.view_scores(graphdef, params, image, pair, key)
    if self.softmin_temperature:
      t = self.softmin_temperature
      combined = -t * jax.nn.logsumexp(-scores / t)
    else:
      combined = scores.sum()
    penalty = (self.tv_weight * total_variation(image)
               + self.l2_weight * jnp.mean(image ** 2))
    if self.blur_weight:
      penalty += self.blur_weight * jnp.mean(
          (image - gaussian_blur(image, self.blur_sigma)) ** 2)
    return combined - penalty


def flip_objective(config: ml_collections.ConfigDict) -> FlipObjective:
  """The objective an `objective` config describes (all zeros: the blog's), or a
  ConfigError."""
  settings = config.to_dict()
  if settings['samples'] < 1:
    raise ConfigError(f'objective.samples must be ≥ 1, not {settings["samples"]}')
  if any(v < 0 for v in settings.values() if not isinstance(v, bool)):
    raise ConfigError('objective weights and ranges must be ≥ 0')
  return FlipObjective(**settings)


def objective_config() -> ml_collections.ConfigDict:
  """`FlipObjective`'s settings, every one declared; all zero is the blog's
  objective, log p(a | x) + log p(b | rot180 x)."""
  return ml_collections.ConfigDict(FlipObjective()._asdict())
