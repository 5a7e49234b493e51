import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from experiments import diffusion as diffusion_experiment
from experiments import pairs_diffusion
from flipnum_jax import checkpoints
from flipnum_jax import data
from flipnum_jax import diffusion
from flipnum_jax import models
from flipnum_jax import objectives
from flipnum_jax import views
from flipnum_jax import pairs
from flipnum_jax.errors import ConfigError
from tests.conftest import override
from tests.test_run import run_cli


@pytest.fixture(scope='module')
def tiny_unet():
  config = diffusion_experiment.diffusion_config('smoke')
  return nnx.split(models.make_unet(config.model, jax.random.key(0)))


def test_space_to_depth_round_trips_and_keeps_blocks_together():
  images = jax.random.uniform(jax.random.key(0), (3, 28, 28))
  folded = models.space_to_depth(images)
  assert folded.shape == (3, 14, 14, 4)
  np.testing.assert_array_equal(folded[1, 2, 5], images[1, 4:6, 10:12].ravel())
  np.testing.assert_array_equal(models.depth_to_space(folded), images)


def test_flow_matching_loss_is_finite_and_learns(tiny_unet, tiny_mnist):
  config = diffusion_experiment.diffusion_config('smoke')
  config.train_examples = 256
  config.log_every = 2
  config.epochs = 2
  model, metrics = diffusion.train_diffusion(config, tiny_mnist)
  assert np.isfinite(metrics['final_train_loss'])
  # Pure noise would give a loss ≈ 2 (the variance of ε − x); the model does better.
  graphdef, params = nnx.split(model)
  images = jnp.asarray(tiny_mnist.test_images[:64] / 255.0, jnp.float32)
  labels = jnp.asarray(tiny_mnist.test_labels[:64])
  trained = diffusion.flow_matching_loss(graphdef, params, images, labels,
                                         jax.random.key(1), 0.0)
  untrained = diffusion.flow_matching_loss(*tiny_unet, images, labels,
                                           jax.random.key(1), 0.0)
  assert float(trained) < float(untrained)


def test_samplers_shapes_ranges_and_one_trace_per_shape(tiny_unet):
  graphdef, params = tiny_unet
  noise = jax.random.normal(jax.random.key(0), (4, 28, 28))
  flip_pairs = jnp.array([[3, 7], [6, 9], [1, 1], [0, 8]])
  before = diffusion.sample._cache_size()
  for _ in range(2):  # the second call with the same shapes must not retrace
    flips = diffusion.sample(graphdef, params, noise, flip_pairs, jax.random.key(1),
                             steps=3, guidance=2.0)
  assert diffusion.sample._cache_size() == before + 1
  plain = diffusion.sample(graphdef, params, noise, flip_pairs[:, 0], jax.random.key(1),
                           steps=3, guidance=2.0)
  for images in (flips, plain):
    assert images.shape == (4, 28, 28)
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
  assert not np.allclose(flips, plain)


def test_view_averaged_sampling_is_equivariant_under_the_turn(tiny_unet):
  # Sampling (a, b) and turning the result equals sampling (b, a) from turned noise.
  graphdef, params = tiny_unet
  noise = jax.random.normal(jax.random.key(3), (3, 28, 28))
  forward = jnp.array([[3, 7], [2, 5], [4, 9]])
  images = diffusion.sample(graphdef, params, noise, forward, jax.random.key(0),
                            steps=4, guidance=3.0)
  swapped = diffusion.sample(graphdef, params, views.rot180(noise), forward[:, ::-1],
                             jax.random.key(0), steps=4, guidance=3.0)
  np.testing.assert_allclose(views.rot180(images), swapped, atol=1e-5)


def test_classifier_guidance_raises_the_generators_score(tiny_unet):
  graphdef, params = tiny_unet
  classifier = models.make_classifier(
      diffusion_experiment.ml_collections.ConfigDict(
          {'conv_features': (4, 8), 'hidden': 16}), jax.random.key(5))
  classifier_graphdef, classifier_params = nnx.split(classifier)
  objective = objectives.FlipObjective(softmin_temperature=1.0)
  noise = jax.random.normal(jax.random.key(4), (4, 28, 28))
  flip_pairs = jnp.array([[3, 7], [6, 9], [1, 1], [0, 8]])
  score = lambda images: jax.vmap(objective, in_axes=(None, None, 0, 0, 0))(
      classifier_graphdef, classifier_params, images, flip_pairs,
      jax.random.split(jax.random.key(0), 4)).mean()
  plain = diffusion.sample(graphdef, params, noise, flip_pairs, jax.random.key(1),
                           steps=4, guidance=1.0)
  guided = diffusion.sample(graphdef, params, noise, flip_pairs, jax.random.key(1),
                            classifier_params, steps=4, guidance=1.0,
                            classifier=classifier_graphdef, objective=objective,
                            classifier_weight=2.0)
  assert float(score(guided)) > float(score(plain))


@pytest.mark.parametrize('key, value, message', [
    ('sampler.steps', 0, 'steps must be ≥ 1'),
    ('sampler.guidance', -1.0, 'guidance must be finite and ≥ 0'),
    ('sampler.classifier_weight', -0.5, 'classifier_weight must be ≥ 0'),
    ('method', 'gan', 'method must be one of'),
])
def test_bad_diffusion_configs_are_refused(key, value, message):
  config = pairs_diffusion.get_config('smoke')
  override(config, key, value)
  with pytest.raises(ConfigError, match=message):
    pairs.check_method(config)


def test_smoke_diffusion_and_pairs_write_their_outputs(smoke_workdir, mnist_dir):
  result = run_cli('--experiment=diffusion:smoke', f'--workdir={smoke_workdir}',
                   env_data_dir=mnist_dir)
  assert result.returncode == 0, result.stderr[-3000:]
  with np.load(smoke_workdir / 'diffusion/smoke/samples.npz') as npz:
    assert npz['images'].shape == (20, 28, 28) and npz['images'].dtype == np.float32
    np.testing.assert_array_equal(npz['labels'], np.repeat(np.arange(10), 2))
  assert (smoke_workdir / 'diffusion/smoke/samples.png').read_bytes().startswith(b'\x89PNG')
  assert (smoke_workdir / 'models/diffusion_smoke/metrics.json').is_file()

  # pairs:smoke: the main job, guided by an open-set classifier (11 classes), with
  # the denoising choice.
  result = run_cli('--experiment=pairs:smoke', f'--workdir={smoke_workdir}',
                   env_data_dir=mnist_dir)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'Loaded diffusion_smoke' in result.stderr  # the cached model is reused
  generator = smoke_workdir / 'models/classifier_smoke_open_set/config.json'
  assert json.loads(generator.read_text())['model']['num_classes'] == 11
  assert 'Drew 8 flip candidates' in result.stderr  # 4 pairs × 2 in one batch
  with np.load(smoke_workdir / 'pairs/smoke/pairs.npz') as npz:
    assert npz['images'].shape == (4, 28, 28)
    assert npz['pairs'].tolist() == [[3, 7], [3, 9], [6, 7], [6, 9]]


def test_committed_diffusion_model_loads_and_denoises_real_digits(mnist_dir):
  config = diffusion_experiment.diffusion_config()
  folder = checkpoints.PRETRAINED_DIR / config.name
  assert checkpoints.saved_config(folder) == checkpoints.config_to_dict(config)
  model, metrics = checkpoints.load(
      folder, lambda: models.make_unet(config.model, jax.random.key(0)))
  assert metrics['num_params'] == 600212
  mnist = data.load_mnist(mnist_dir)
  images = jnp.asarray(data.to_float(mnist.test_images[:256]))
  labels = jnp.asarray(mnist.test_labels[:256])
  loss = diffusion.flow_matching_loss(*nnx.split(model), images, labels,
                                      jax.random.key(0), 0.0)
  # Trained: ≈ 0.19 (an untrained network: ≈ 2, the variance of ε − x).
  assert float(loss) < 0.3


def test_sampling_keys_share_no_key_with_the_sampler_steps():
  noise_key, step_key, typicality_key = diffusion.sampling_keys(3)
  used = [noise_key, typicality_key, *jax.random.split(step_key, 40)]
  bits = [tuple(np.asarray(jax.random.key_data(k)).ravel()) for k in used]
  assert len(set(bits)) == len(bits)
