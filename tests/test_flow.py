import json
import logging as pylogging
import re
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from experiments import diffusion as diffusion_experiment
from experiments import pairs_diffusion
from flipnum_jax import data
from flipnum_jax import generators
from flipnum_jax import io
from flipnum_jax import models
from flipnum_jax import objectives
from flipnum_jax import train
from flipnum_jax import views
from flipnum_jax.errors import ConfigError
from flipnum_jax.generators import flow
from flipnum_jax.generators import handwriting
from tests.conftest import override
from tests.test_run import run_cli


def test_space_to_depth_round_trips_and_keeps_blocks_together():
  images = jax.random.uniform(jax.random.key(0), (3, 28, 28))
  folded = models.space_to_depth(images)
  assert folded.shape == (3, 14, 14, 4)
  np.testing.assert_array_equal(folded[1, 2, 5], images[1, 4:6, 10:12].ravel())
  np.testing.assert_array_equal(models.depth_to_space(folded), images)


def test_flow_matching_loss_is_finite_and_learns(tiny_unet, tiny_mnist):
  config = diffusion_experiment.model_config('smoke')
  config.train_examples = 256
  config.log_every = 2
  config.epochs = 2
  model, metrics = train.fit(train.KINDS['flow'], config, tiny_mnist)
  assert np.isfinite(metrics['final_train_loss'])
  # Pure noise would give a loss ≈ 2 (the variance of ε − x); the model does better.
  graphdef, params = nnx.split(model)
  examples = (jnp.asarray(tiny_mnist.test_images[:64] / 255.0, jnp.float32),
              jnp.asarray(tiny_mnist.test_labels[:64]))
  loss = jax.jit(train.FlowMatchingLoss(0.0).__call__, static_argnums=0)
  trained, _ = loss(graphdef, params, examples, jax.random.key(1), 0.0)
  untrained, _ = loss(*tiny_unet, examples, jax.random.key(1), 0.0)
  assert float(trained) < float(untrained)


def test_one_euler_step_is_noise_minus_the_guided_velocity(tiny_unet):
  # From t = 1 to t = 0 in one step: x₀ = x₁ − v(x₁, 1), mapped to [0, 1].
  graphdef, params = tiny_unet
  noise = jax.random.normal(jax.random.key(0), (4, 28, 28))
  labels = jnp.array([3, 6, 1, 0])
  v = flow.guided_velocity(graphdef, params, noise, jnp.float32(1.0), labels, 2.0)
  plain = flow.sample_digits(graphdef, params, noise, labels, jax.random.key(1), 2.0,
                             steps=1)
  np.testing.assert_allclose(plain, models.to_images(noise - v), atol=1e-5)
  flips = flow.sample_flips(graphdef, params, noise, jnp.stack([labels, labels[::-1]], 1),
                            jax.random.key(1), 2.0, steps=1)
  assert not np.allclose(flips, plain)  # the turned view's velocity is averaged in


def test_the_sampler_logs_its_progress_from_inside_its_scan(tiny_unet, caplog):
  caplog.set_level(pylogging.INFO)
  unet, params = tiny_unet
  flow.sample_digits(unet, params, jax.random.normal(jax.random.key(0), (2, 28, 28)),
                     jnp.array([3, 7]), jax.random.key(1), 2.0, steps=25).block_until_ready()
  steps = [int(m) for m in re.findall(r'flow sampler: step (\d+)/25', caplog.text)]
  # Every tenth of the loop (every second step of 25), in order, then the end.
  assert steps == list(range(0, 25, 2)) + [25], caplog.text
  assert re.search(r'step 25/25, \d+ s, about 0 s left', caplog.text)


def test_guidance_is_traced_not_a_recompile(tiny_unet, monkeypatch):
  graphdef, params = tiny_unet
  traces = []
  real = flow.flip_velocity
  monkeypatch.setattr(flow, 'flip_velocity', lambda *a: traces.append(1) or real(*a))
  noise = jax.random.normal(jax.random.key(0), (5, 28, 28))  # a shape no other test uses
  flip_pairs = jnp.array([[3, 7], [6, 9], [1, 1], [0, 8], [2, 5]])
  draw = lambda guidance: flow.sample_flips(graphdef, params, noise, flip_pairs,
                                            jax.random.key(1), guidance, steps=2)
  weak = draw(1.0)
  traced = len(traces)
  strong = draw(4.0)
  assert traced >= 1 and len(traces) == traced  # another guidance: no new trace
  assert not np.allclose(weak, strong)


def test_autoguidance_steers_away_from_the_weak_model(tiny_unet):
  # Autoguidance: weak + w·(model − weak), both conditional. A model that guides
  # itself leaves its conditional velocity at any weight, which is classifier-free
  # guidance at weight 1; a weaker model at weight 1 changes nothing either, and at
  # a larger weight it moves the sample.
  graphdef, params = tiny_unet
  spec = diffusion_experiment.model_config('smoke').model
  spec.features = 8
  weak_graphdef, weak_params = nnx.split(models.make_unet(spec, jax.random.key(9)))
  noise = jax.random.normal(jax.random.key(12), (3, 28, 28))
  forward = jnp.array([[3, 7], [6, 9], [1, 8]])
  draw = lambda guidance, weak_graphdef=None, weak_params=None, steps=3: (
      flow.sample_flips(graphdef, params, noise, forward, jax.random.key(2),
                        jnp.float32(guidance), weak_params=weak_params, steps=steps,
                        weak_graphdef=weak_graphdef))
  conditional = draw(1.0)
  np.testing.assert_allclose(draw(3.0, graphdef, params), conditional, atol=1e-5)
  np.testing.assert_allclose(draw(1.0, weak_graphdef, weak_params), conditional,
                             atol=1e-5)
  autoguided = draw(3.0, weak_graphdef, weak_params)
  assert np.all(np.isfinite(autoguided))
  assert not np.allclose(autoguided, conditional, atol=1e-3)
  assert not np.allclose(autoguided, draw(3.0), atol=1e-3)  # not classifier-free
  # By hand, one step from t = 1: x₀ = x₁ − ½·(g(x₁ | a) + rot180 g(rot180 x₁ | b)),
  # g = v_weak + 3·(v − v_weak).
  labels = jnp.concatenate([forward[:, 0], forward[:, 1]])
  both = jnp.concatenate([noise, views.rot180(noise)])
  times = jnp.ones((6,))
  v = flow.velocity(graphdef, params, both, times, labels)
  v_weak = flow.velocity(weak_graphdef, weak_params, both, times, labels)
  guided = v_weak + 3.0 * (v - v_weak)
  averaged = 0.5 * (guided[:3] + views.rot180(guided[3:]))
  np.testing.assert_allclose(draw(3.0, weak_graphdef, weak_params, steps=1),
                             models.to_images(noise - averaged), atol=1e-5)


def test_view_averaged_sampling_is_equivariant_under_the_turn(tiny_unet):
  # Sampling (a, b) and turning the result equals sampling (b, a) from turned noise.
  graphdef, params = tiny_unet
  noise = jax.random.normal(jax.random.key(3), (3, 28, 28))
  forward = jnp.array([[3, 7], [2, 5], [4, 9]])
  images = flow.sample_flips(graphdef, params, noise, forward, jax.random.key(0), 3.0,
                             steps=4)
  swapped = flow.sample_flips(graphdef, params, views.rot180(noise), forward[:, ::-1],
                              jax.random.key(0), 3.0, steps=4)
  np.testing.assert_allclose(views.rot180(images), swapped, atol=1e-5)


def test_classifier_guidance_raises_the_generators_score_image_by_image(
    tiny_unet, tiny_classifier):
  graphdef, params = tiny_unet
  classifier_graphdef, classifier_params = tiny_classifier
  objective = objectives.FlipObjective(softmin_temperature=1.0)
  noise = jax.random.normal(jax.random.key(4), (4, 28, 28))
  flip_pairs = jnp.array([[3, 7], [6, 9], [1, 1], [0, 8]])
  score = lambda images: jax.vmap(objective, in_axes=(None, None, 0, 0, 0))(
      classifier_graphdef, classifier_params, images, flip_pairs,
      jax.random.split(jax.random.key(0), 4)).mean()
  plain = flow.sample_flips(graphdef, params, noise, flip_pairs, jax.random.key(1), 1.0,
                            steps=4)
  guided_by = lambda weights: flow.sample_flips(
      graphdef, params, noise, flip_pairs, jax.random.key(1), 1.0, classifier_params,
      weights, steps=4, classifier=classifier_graphdef, objective=objective)
  guided = guided_by(2.0)
  assert float(score(guided)) > float(score(plain))
  # One weight per image, (2, 0, 2, 0): images 0 and 2 are pushed as above, 1 and 3
  # not at all, with the same noise and keys.
  mixed = guided_by(jnp.array([2.0, 0.0, 2.0, 0.0]))
  np.testing.assert_allclose(mixed[::2], guided[::2], atol=1e-5)
  np.testing.assert_allclose(mixed[1::2], plain[1::2], atol=1e-5)
  # The push acts only at step times (1, ¾, ½, ¼) inside push_interval (lo, hi].
  pushed_within = lambda interval: flow.sample_flips(
      graphdef, params, noise, flip_pairs, jax.random.key(1), 1.0, classifier_params,
      2.0, push_interval=jnp.array(interval), steps=4, classifier=classifier_graphdef,
      objective=objective)
  np.testing.assert_allclose(pushed_within((0.0, 1.0)), guided, atol=1e-6)
  np.testing.assert_allclose(pushed_within((0.8, 0.95)), plain, atol=1e-6)
  early = pushed_within((0.3, 1.0))  # pushed at 1, ¾ and ½, not at ¼
  assert not np.allclose(early, guided, atol=1e-4)
  assert not np.allclose(early, plain, atol=1e-4)


def test_the_last_candidates_of_each_pair_go_unpushed():
  candidate_pairs = np.repeat(np.array([[3, 7], [0, 8]]), 4, axis=0)
  np.testing.assert_array_equal(flow.classifier_weights(candidate_pairs, 2.0, 3),
                                [2, 0, 0, 0, 2, 0, 0, 0])
  np.testing.assert_array_equal(flow.classifier_weights(candidate_pairs, 2.0, 0),
                                np.full(8, 2.0))
  with pytest.raises(ConfigError, match=r'unpushed_per_pair \(5\) must be at most'):
    flow.classifier_weights(candidate_pairs, 2.0, 5)


@pytest.mark.parametrize('key, value, message', [
    ('generator.steps', 0, 'steps must be ≥ 1'),
    ('generator.guidance', -1.0, 'guidance must be finite and ≥ 0'),
    ('generator.classifier_weight', -0.5, 'classifier_weight must be ≥ 0'),
    ('generator.unpushed_per_pair', -1, 'unpushed_per_pair must be ≥ 0'),
    ('generator.select', 'best', 'select must be one of'),
    ('generator.name', 'gan', 'generator.name must be one of'),
    ('generator.combine', 'max', 'combine must be one of'),
    ('generator.view_weighting', True, "view_weighting needs generator.combine='clean'"),
    ('generator.guidance_interval', (0.5, 0.2), 'guidance_interval must be'),
    ('generator.resample_every', -1, 'resample_every must be ≥ 0'),
    ('generator.start_time', 0.0, r'start_time must be in \(0, 1\]'),
    ('generator.start_time', 1.5, r'start_time must be in \(0, 1\]'),
    ('generator.handwriting_per_class', 0, 'handwriting_per_class must be ≥ 1'),
    ('generator.corrector_steps', -1, 'corrector_steps must be ≥ 0'),
    ('generator.corrector_snr', 0.0, 'corrector_snr > 0'),
    ('generator.name', 'ascent', 'the ascent generator takes the settings'),
])
def test_bad_flow_configs_are_refused(key, value, message):
  config = pairs_diffusion.get_config('smoke')
  override(config, key, value)
  with pytest.raises(ConfigError, match=message):
    generators.check(config)


def test_smoke_diffusion_and_pairs_write_their_outputs(smoke_workdir, mnist_dir, tmp_path):
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
    classifier_free = npz['images']

  # Autoguidance trains its weak model into the workdir; the same seed then gives
  # other images. (Its own workdir with the smoke models: the plain pairs:smoke
  # output stays the other tests' single-process reference.)
  autoguided = tmp_path / 'autoguided'
  shutil.copytree(smoke_workdir / 'models', autoguided / 'models')
  result = run_cli('--experiment=pairs:smoke', f'--workdir={autoguided}',
                   '--config.generator.autoguidance=True', env_data_dir=mnist_dir)
  assert result.returncode == 0, result.stderr[-3000:]
  assert (autoguided / 'models/diffusion_smoke_weak/metrics.json').is_file()
  with np.load(autoguided / 'pairs/smoke/pairs.npz') as npz:
    assert npz['images'].shape == (4, 28, 28) and np.all(np.isfinite(npz['images']))
    assert not np.allclose(npz['images'], classifier_free, atol=1e-3)


def test_committed_flow_model_is_reused_and_denoises_real_digits(
    tmp_path, mnist_dir, monkeypatch):
  config = diffusion_experiment.model_config()
  config.log_every = 50  # a logging setting: the committed model must still be used
  monkeypatch.setattr(train, 'fit', lambda *a: pytest.fail('retrained the committed model'))
  workspace = io.Workspace(tmp_path, str(mnist_dir))
  model, metrics = train.get_model('flow', config, workspace)
  # The restored weights are the architecture's (a 600k-parameter U-Net), all of them.
  assert models.num_params(nnx.state(model, nnx.Param)) == metrics['num_params'] == 600212
  examples = (jnp.asarray(data.to_float(workspace.mnist.test_images[:256])),
              jnp.asarray(workspace.mnist.test_labels[:256]))
  loss, _ = train.FlowMatchingLoss(0.0)(*nnx.split(model), examples, jax.random.key(0), 0.0)
  # Trained: ≈ 0.19 (an untrained network: ≈ 2, the variance of ε − x).
  assert float(loss) < 0.3
  config.epochs = 6  # a setting that shapes the weights: that would retrain
  with pytest.raises(pytest.fail.Exception, match='retrained'):
    train.get_model('flow', config, workspace)


def test_sampling_keys_share_no_key_with_the_sampler_steps():
  noise_key, step_key, typicality_key = flow.sampling_keys(jax.random.key(3))
  used = [noise_key, typicality_key, *jax.random.split(step_key, 40)]
  bits = [tuple(np.asarray(jax.random.key_data(k)).ravel()) for k in used]
  assert len(set(bits)) == len(bits)


def test_clean_combination_of_agreeing_views_is_their_velocity_and_keeps_noise_rms():
  x = jax.random.normal(jax.random.key(0), (3, 28, 28))
  v = jax.random.normal(jax.random.key(1), (3, 28, 28))
  even = jnp.full((2, 3), 0.5)
  same, clean = flow.clean_combination(x, 0.6, 0.5, (v, v), even)
  np.testing.assert_allclose(same, v, atol=1e-5)
  np.testing.assert_allclose(clean, x - 0.6 * v, atol=1e-6)
  # Two views that disagree: the averaged noise estimate is rescaled to their RMS.
  w = jax.random.normal(jax.random.key(2), (3, 28, 28))
  velocity, clean = flow.clean_combination(x, 0.6, 0.5, (v, w), even)
  landing = x + (0.5 - 0.6) * velocity
  noise = (landing - 0.5 * clean) / 0.5
  rms = lambda a: np.sqrt(np.mean(np.asarray(a) ** 2, axis=(1, 2)))
  np.testing.assert_allclose(rms(noise), 0.5 * (rms(x + 0.4 * v) + rms(x + 0.4 * w)),
                             rtol=1e-4)
  assert np.all(rms(noise) > rms(0.5 * (2 * x + 0.4 * (v + w))))  # plain averaging shrinks


def test_guidance_interval_and_clean_combination_in_the_sampler(tiny_unet):
  graphdef, params = tiny_unet
  noise = jax.random.normal(jax.random.key(3), (3, 28, 28))
  forward = jnp.array([[3, 7], [2, 5], [4, 9]])
  draw = lambda guidance, interval, **kw: flow.sample_flips(
      graphdef, params, noise, forward, jax.random.key(0), guidance, None, 0.0,
      jnp.array(interval), steps=2, **kw)
  # Times 1 and ½: an interval holding neither is no guidance (weight 1) at all.
  np.testing.assert_array_equal(draw(3.0, (0.0, 0.1)), draw(1.0, (0.0, 1.0)))
  assert not np.allclose(draw(3.0, (0.0, 1.0)), draw(1.0, (0.0, 1.0)))
  # The clean combination keeps the turn equivariance of view averaging.
  images = draw(3.0, (0.0, 1.0), combine='clean')
  swapped = flow.sample_flips(graphdef, params, views.rot180(noise), forward[:, ::-1],
                              jax.random.key(0), 3.0, None, 0.0, jnp.array((0.0, 1.0)),
                              steps=2, combine='clean')
  np.testing.assert_allclose(views.rot180(images), swapped, atol=1e-5)
  assert not np.allclose(images, draw(3.0, (0.0, 1.0)))


def test_view_weighting_reads_the_views_and_keeps_the_turn_equivariance(tiny_unet, tiny_classifier):
  graphdef, params = tiny_unet
  classifier_graphdef, classifier_params = tiny_classifier
  noise = jax.random.normal(jax.random.key(6), (3, 28, 28))
  forward = jnp.array([[3, 7], [2, 5], [4, 9]])
  draw = lambda noise, pairs, weighting: flow.sample_flips(
      graphdef, params, noise, pairs, jax.random.key(0), 3.0, classifier_params, 0.0,
      jnp.array((0.0, 1.0)), steps=3, classifier=classifier_graphdef, combine='clean',
      view_weighting=weighting)
  weighted = draw(noise, forward, True)
  assert not np.allclose(weighted, draw(noise, forward, False))
  np.testing.assert_allclose(views.rot180(weighted),
                             draw(views.rot180(noise), forward[:, ::-1], True), atol=1e-4)


def test_resampling_draws_parents_within_each_pairs_group():
  groups = flow.resampling_groups(np.array([[3, 7], [3, 7], [6, 9], [6, 9], [6, 9]]))
  np.testing.assert_array_equal(groups, [[0, 0, 1, 1, 1], [0, 1, 0, 1, 2], [2, 2, 3, 3, 3]])
  groups = jnp.asarray(groups)
  # Equal weights: systematic resampling keeps every particle once.
  even = jax.jit(flow.resample)(jax.random.key(0), jnp.zeros(5), groups)
  np.testing.assert_array_equal(even, np.arange(5))
  # One particle far ahead in each group takes over its group, and only its group.
  favoured = flow.resample(jax.random.key(1), jnp.array([0.0, 50.0, 50.0, 0.0, 0.0]),
                           groups)
  np.testing.assert_array_equal(favoured, [1, 1, 2, 2, 2])


def test_resampling_sampler_keeps_shapes_and_the_default_path(tiny_unet, tiny_classifier):
  graphdef, params = tiny_unet
  classifier_graphdef, classifier_params = tiny_classifier
  candidate_pairs = np.array([[3, 7], [3, 7], [6, 9], [6, 9]])
  noise = jax.random.normal(jax.random.key(7), (4, 28, 28))
  draw = lambda every: flow.sample_flips(
      graphdef, params, noise, jnp.asarray(candidate_pairs), jax.random.key(0), 3.0,
      classifier_params, 0.0, jnp.array((0.0, 1.0)), jnp.array((0.0, 1.0)),
      jnp.asarray(flow.resampling_groups(candidate_pairs)), 1.0, steps=4,
      classifier=classifier_graphdef, resample_every=every)
  plain = flow.sample_flips(graphdef, params, noise, jnp.asarray(candidate_pairs),
                            jax.random.key(0), 3.0, steps=4)
  np.testing.assert_array_equal(draw(0), plain)  # resample_every 0: the plain sampler
  resampled = draw(2)
  assert resampled.shape == (4, 28, 28) and not np.allclose(resampled, plain)


def test_correctors_need_the_velocity_combination():
  config = pairs_diffusion.get_config('smoke')
  override(config, 'generator.corrector_steps', 1)
  override(config, 'generator.combine', 'clean')
  with pytest.raises(ConfigError, match="corrector_steps needs generator.combine='velocity'"):
    generators.check(config)


def test_langevin_steps_sample_the_distribution_of_their_score():
  # On the score of N(m, s²) (per pixel), chains started 3 s away settle at its mean
  # and spread: a sign error, a wrong step size or a missing √2 in the noise would not.
  mean, spread = 0.5, 0.3
  chains = jnp.full((64, 28, 28), mean + 3 * spread)

  def step(signal, key):
    score = -(signal - mean) / spread ** 2
    return flow.langevin_step(signal, score, jax.random.normal(key, signal.shape),
                              jnp.float32(0.3)), None

  settled, _ = jax.jit(lambda x: jax.lax.scan(step, x, jax.random.split(
      jax.random.key(0), 400)))(chains)
  assert abs(float(settled.mean()) - mean) < 0.01
  # ULA's own bias on a Gaussian at this step size: the spread grows by ≈ snr²/2.
  assert float(settled.std()) == pytest.approx(spread, rel=0.06)


def test_correctors_move_the_sample_and_leave_the_default_path_alone(tiny_unet,
                                                                     tiny_classifier):
  graphdef, params = tiny_unet
  classifier_graphdef, classifier_params = tiny_classifier
  forward = jnp.array([[3, 7], [6, 9]])
  noise = jax.random.normal(jax.random.key(11), (2, 28, 28))
  objective = objectives.flip_objective(objectives.objective_config())
  draw = lambda corrector_steps, snr=0.2: flow.sample_flips(
      graphdef, params, noise, forward, jax.random.key(0), 3.0, classifier_params, 1.0,
      corrector_snr=jnp.float32(snr), steps=3, classifier=classifier_graphdef,
      objective=objective, corrector_steps=corrector_steps)
  plain = draw(0)
  np.testing.assert_array_equal(plain, draw(0, snr=0.5))  # no correctors: snr unused
  corrected = draw(2)
  assert corrected.shape == (2, 28, 28) and np.all(np.isfinite(corrected))
  assert not np.allclose(corrected, plain, atol=1e-3)
  # A smaller ratio moves less: the step size scales with snr².
  nearer = draw(2, snr=0.02)
  assert np.abs(nearer - plain).mean() < np.abs(corrected - plain).mean()


def test_sampling_from_a_middle_time_is_one_euler_step_from_there(tiny_unet):
  # From t₀ = 0.4 to 0 in one step: x₀ = x_t₀ − t₀·v̄(x_t₀, t₀), v̄ view-averaged.
  graphdef, params = tiny_unet
  start = jax.random.normal(jax.random.key(8), (3, 28, 28))
  forward = jnp.array([[3, 7], [2, 5], [4, 9]])
  v = flow.flip_velocity(graphdef, params, start, jnp.float32(0.4), forward, 2.0)
  drawn = jax.jit(flow.sample_flips, static_argnames=('graphdef', 'steps'))(
      graphdef, params, start, forward, jax.random.key(0), 2.0, start_time=0.4, steps=1)
  np.testing.assert_allclose(drawn, models.to_images(start - 0.4 * v), atol=1e-5)


def _planted_pools():
  """Random-stroke pools (10, 6, 28, 28) in which the 3rd 7 is the 2nd 3 turned,
  half as bright: for the pair (3, 7) the 2nd 3 is the nearest flip, at distance 0
  up to brightness."""
  pools = np.asarray(jax.random.uniform(jax.random.key(9), (10, 6, 28, 28)) > 0.8,
                     np.float32)
  pools[7, 2] = pools[3, 1, ::-1, ::-1]
  return pools


def test_nearest_flips_find_a_planted_flip_and_average_it_with_its_partner():
  pools = _planted_pools()
  starts = handwriting.nearest_flips(jnp.asarray(pools), jnp.array([[3, 7], [7, 3]]),
                                     count=2)
  assert starts.shape == (2, 2, 28, 28)
  # The 2nd 3 meets its own turn: the average is the 3 itself; for (7, 3), the 3rd 7.
  np.testing.assert_allclose(starts[0, 0], pools[3, 1], atol=1e-6)
  np.testing.assert_allclose(starts[1, 0], pools[7, 2], atol=1e-6)
  # The runner-up is some other 3 averaged with some turned 7: half-ink somewhere.
  assert not np.allclose(starts[0, 1], pools[3, 1])
  assert np.any(np.isclose(starts[0, 1], 0.5))


def test_handwriting_starts_give_each_candidate_its_ranked_start_noised(tiny_mnist):
  candidate_pairs = np.array([[3, 7], [3, 7], [6, 9], [6, 9]])
  noise = jax.random.normal(jax.random.key(10), (4, 28, 28))
  starts = flow.handwriting_starts(candidate_pairs, tiny_mnist, 5, noise, 0.25)
  nearest = handwriting.nearest_flips(
      jnp.asarray(handwriting.class_pools(tiny_mnist, 5)), jnp.array([[3, 7], [6, 9]]),
      count=2)
  expected = 0.75 * models.to_signal(nearest.reshape(4, 28, 28)) + 0.25 * noise
  np.testing.assert_allclose(starts, expected, atol=1e-6)
  with pytest.raises(ConfigError, match='handwriting_per_class'):
    flow.handwriting_starts(candidate_pairs, tiny_mnist, 1, noise, 0.25)
