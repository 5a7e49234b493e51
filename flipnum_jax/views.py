"""The views the whole kit shares: the 180° turn, and the random warps that
training (augmentation), ascent (expectation over transformations) and sampling
(classifier guidance) apply to images. Pure functions of their arguments.
"""

import jax
import jax.numpy as jnp


def rot180(images: jax.Array) -> jax.Array:
  """Turns images (..., 28, 28) by 180°: both spatial axes reversed."""
  return jnp.flip(images, axis=(-2, -1))


def affine_warp(image: jax.Array, angle: jax.Array, scale: jax.Array,
                shift: jax.Array) -> jax.Array:
  """Rotates one image by `angle` (radians) about its centre, scales it by `scale`
  and moves it by `shift` (rows, columns) pixels; bilinear, zeros outside."""
  centre = (image.shape[0] - 1) / 2
  rows, cols = jnp.meshgrid(jnp.arange(image.shape[0]) - centre,
                            jnp.arange(image.shape[1]) - centre, indexing='ij')
  # Each output pixel samples the input at the inverse-transformed position.
  cos, sin = jnp.cos(angle) / scale, jnp.sin(angle) / scale
  src_rows = cos * rows - sin * cols + centre + shift[0]
  src_cols = sin * rows + cos * cols + centre + shift[1]
  return jax.scipy.ndimage.map_coordinates(image, [src_rows, src_cols], order=1,
                                           mode='constant', cval=0.0)


def random_warp(key: jax.Array, jitter: float, degrees: float,
                scale_range: float) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The draws of `random_transform`: an angle (radians), a scale and a shift (2,).
  Apart, so that a port of the kit (bench's PyTorch peer) can warp by the same draws."""
  angle_key, scale_key, shift_key = jax.random.split(key, 3)
  angle = jnp.deg2rad(jax.random.uniform(angle_key, minval=-degrees, maxval=degrees))
  scale = jax.random.uniform(scale_key, minval=1 - scale_range, maxval=1 + scale_range)
  shift = jax.random.uniform(shift_key, (2,), minval=-jitter, maxval=jitter)
  return angle, scale, shift


def random_transform(key: jax.Array, image: jax.Array, jitter: float, degrees: float,
                     scale_range: float) -> jax.Array:
  """A random small rotation, scaling and sub-pixel shift of one image (bilinear)."""
  return affine_warp(image, *random_warp(key, jitter, degrees, scale_range))


def random_shift(key: jax.Array, images: jax.Array, max_shift: int) -> jax.Array:
  """Moves each image (N, 28, 28) by its own random integer offset in ±max_shift."""
  if max_shift == 0:
    return images
  n, height, width = images.shape
  padded = jnp.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift)))
  offsets = jax.random.randint(key, (n, 2), 0, 2 * max_shift + 1)
  crop = lambda image, offset: jax.lax.dynamic_slice(image, offset, (height, width))
  return jax.vmap(crop)(padded, offsets)


def random_affine(key: jax.Array, images: jax.Array, degrees: float,
                  scale_range: float) -> jax.Array:
  """Rotates each image (N, 28, 28) by up to ±degrees and scales it by 1 ± scale_range."""
  n = images.shape[0]
  angle_key, scale_key = jax.random.split(key)
  angles = jnp.deg2rad(jax.random.uniform(angle_key, (n,), minval=-degrees, maxval=degrees))
  scales = jax.random.uniform(scale_key, (n,), minval=1 - scale_range, maxval=1 + scale_range)
  warp = jax.vmap(affine_warp, in_axes=(0, 0, 0, None))
  return warp(images, angles, scales, jnp.zeros(2))
