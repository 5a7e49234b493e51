import jax
import jax.numpy as jnp
import numpy as np

from flipnum_jax import views


def test_rot180_is_an_involution_and_matches_numpy():
  images = np.random.default_rng(0).random((3, 28, 28)).astype(np.float32)
  turned = jax.jit(views.rot180)(images)
  np.testing.assert_array_equal(turned[1], np.rot90(images[1], 2))
  np.testing.assert_array_equal(turned, np.rot90(images, 2, axes=(1, 2)))
  np.testing.assert_array_equal(views.rot180(turned), images)


def test_random_transform_is_identity_at_zero_and_moves_ink_otherwise():
  image = jnp.zeros((28, 28)).at[10:18, 12:16].set(1.0)
  same = jax.jit(views.random_transform, static_argnums=(2, 3, 4))(
      jax.random.key(0), image, 0.0, 0.0, 0.0)
  np.testing.assert_allclose(same, image, atol=1e-6)
  moved = views.random_transform(jax.random.key(0), image, 2.0, 10.0, 0.1)
  assert not np.allclose(moved, image) and abs(float(moved.sum() - image.sum())) < 8


def test_affine_warp_by_a_whole_pixel_shift_moves_the_image():
  image = jnp.zeros((28, 28)).at[10:18, 12:16].set(1.0)
  moved = views.affine_warp(image, jnp.float32(0.0), jnp.float32(1.0), jnp.array([0.0, 2.0]))
  # Output (r, c) samples input (r, c + 2): the ink moves two columns left.
  np.testing.assert_allclose(moved, jnp.roll(image, -2, axis=1), atol=1e-6)


def test_random_shift_moves_content_by_at_most_max_shift():
  images = jnp.zeros((16, 28, 28)).at[:, 14, 14].set(1.0)
  shifted = jax.jit(views.random_shift, static_argnums=2)(jax.random.key(0), images, 2)
  assert shifted.shape == images.shape
  rows, cols = np.nonzero(np.asarray(shifted).sum(0))
  assert np.all(np.abs(rows - 14) <= 2) and np.all(np.abs(cols - 14) <= 2)
  assert len(set(zip(rows, cols))) > 1  # the offsets differ between images
  np.testing.assert_array_equal(np.asarray(shifted).sum((1, 2)), 1.0)  # nothing lost
  np.testing.assert_array_equal(views.random_shift(jax.random.key(0), images, 0), images)


def test_random_affine_rotates_each_image_by_its_own_angle():
  images = jnp.zeros((4, 28, 28)).at[:, 13:15, 4:24].set(1.0)  # a horizontal bar
  turned = jax.jit(views.random_affine, static_argnums=(2, 3))(
      jax.random.key(1), images, 30.0, 0.0)
  assert not np.allclose(turned[0], turned[1])  # different angles
  np.testing.assert_array_equal(views.random_affine(jax.random.key(1), images, 0.0, 0.0),
                                images)
