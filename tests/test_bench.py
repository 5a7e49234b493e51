"""The bench's ports and variants of the main job's sampler compute what the kit
computes: the PyTorch ports (when PyTorch imports) and bench's own copies of the
sampler's step, from the same noise and weights."""

import jax
import numpy as np
import pytest
from flax import nnx

from experiments import bench as bench_experiment
from flipnum_jax import bench
from flipnum_jax import bench_peers


@pytest.fixture(scope='module')
def sampler() -> bench.Sampler:
  """The `pairs` sampler on the smoke networks (random weights), 4 pairs × K = 2,
  3 steps, with the `pairs` objective's jitter and rotations."""
  config = bench_experiment.sampler_config('smoke')
  config.steps = 3
  return bench.make_sampler(config, pairs=4)


@pytest.fixture(scope='module')
def kit_images(sampler) -> jax.Array:
  compiled, inputs = bench.kit_sampler(sampler, sampler.steps)
  return compiled(*inputs)


def test_bench_copies_of_the_step_land_where_the_kit_does(sampler, kit_images):
  # The scan-body penalty and the unrolling are only measured if bench's copy of the
  # step is the kit's step. Same XLA, other fusions: float32 rounding, ~1e-6.
  graphdefs, params = zip(nnx.split(sampler.unet), nnx.split(sampler.classifier))
  np.testing.assert_allclose(bench.host_loop_sample(sampler), kit_images, atol=1e-5)
  for unroll in (1, 2):
    unrolled = bench.unrolled_sample(
        graphdefs, params, sampler.noise, sampler.pairs, sampler.key, sampler.guidance,
        sampler.classifier_weight, objective=sampler.objective, steps=sampler.steps,
        unroll=unroll)
    np.testing.assert_allclose(unrolled, kit_images, atol=1e-5)


def test_the_pytorch_unet_computes_the_flax_unet(sampler):
  torch = pytest.importorskip('torch')
  images = jax.random.normal(jax.random.key(0), (8, 28, 28))
  times = jax.random.uniform(jax.random.key(1), (8,))
  labels = np.arange(8) % 11  # 10: the unconditional token
  expected = np.asarray(sampler.unet(images, times, labels))
  with torch.no_grad():
    ported = bench_peers.torch_unet(sampler.unet)(
        *(torch.tensor(np.asarray(a)) for a in (images, times, labels))).numpy()
  # float32 sums of up to 9·96 terms added in another order (oneDNN vs Eigen), through
  # ~12 layers and GroupNorms: ~1e-5 on outputs of order 1 (measured 7e-6); a wiring
  # error (padding, channel order, fold) is off by order 1.
  np.testing.assert_allclose(ported, expected, atol=5e-5)


def test_the_pytorch_sampler_lands_where_the_kit_does(sampler, kit_images):
  pytest.importorskip('torch')
  port = lambda objective: bench_peers.torch_sampler(
      sampler.unet, sampler.classifier, objective, sampler.noise, sampler.pairs,
      sampler.key, sampler.guidance, sampler.classifier_weight, sampler.steps, 1,
      kit_images)['max_image_difference']
  assert sampler.objective.jitter and sampler.objective.rotation_degrees
  # Same noise, weights and warps: the step's rounding (~1e-6, measured 3e-6 over 3
  # steps), amplified by guidance 3 (u + 3·(c − u)) and the unit-RMS scaling of the
  # gradient, stays far below a pixel level (1/255 ≈ 4e-3). (On these 8 images no
  # ReLU input sits within rounding of 0; on hundreds, one in ~100 may: see
  # bench_peers.torch_sampler.)
  assert port(sampler.objective) < 1e-4
  # The warps are the kit's own: the same port without them lands elsewhere.
  unwarped = sampler.objective._replace(jitter=0.0, rotation_degrees=0.0)
  assert port(unwarped) > 1e-3
