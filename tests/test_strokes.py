import logging as pylogging
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flipnum_jax import exchange
from flipnum_jax import models
from flipnum_jax import objectives
from flipnum_jax.errors import ConfigError
from flipnum_jax.generators import flow
from flipnum_jax.generators import strokes
from tests.test_run import run_cli


def straight(start, end):
  """Control points of a straight stroke from `start` to `end` (row, column)."""
  start, end = np.asarray(start, np.float32), np.asarray(end, np.float32)
  return jnp.asarray(np.stack([start + f * (end - start) for f in (0, 1 / 3, 2 / 3, 1)]))


def test_a_straight_stroke_inks_its_line_and_nothing_far_from_it():
  render = jax.jit(strokes.render, static_argnames=('softness', 'samples'))
  image = np.asarray(render(straight((14, 6), (14, 21))[None], jnp.array([1.5]),
                            softness=0.3, samples=8))
  assert image.shape == (28, 28)
  assert image[14, 6:22].min() > 0.8  # on the line, both ends included
  assert image[14, 13:15].min() > 0.95
  assert image[11, :].max() < 0.01 and image[:, 2].max() < 0.01  # 3+ pixels away
  assert image[14, 25] < 0.01  # past its end
  # Mirror symmetric about its axis, row 14 (rows 14 ± k alike).
  np.testing.assert_allclose(image[1:], image[1:][::-1], atol=1e-5)
  wider = render(straight((14, 6), (14, 21))[None], jnp.array([2.5]), softness=0.3,
                 samples=8)
  assert float(wider.sum()) > float(image.sum()) + 20  # two more rows of ink
  # Two crossing strokes overlay (1 − Π(1 − ink)): the crossing is ink, not 2.
  cross = np.asarray(render(jnp.stack([straight((14, 6), (14, 21)),
                                       straight((6, 14), (21, 14))]),
                            jnp.array([1.5, 1.5]), softness=0.3, samples=8))
  assert cross.max() <= 1.0 and cross[14, 14] > 0.95 and cross[8, 14] > 0.8


def test_bezier_points_start_and_end_at_the_outer_controls():
  controls = jax.random.uniform(jax.random.key(3), (2, 4, 2), minval=5, maxval=20)
  points = strokes.bezier_points(controls, 5)
  np.testing.assert_allclose(points[:, 0], controls[:, 0], atol=1e-5)
  np.testing.assert_allclose(points[:, -1], controls[:, 3], atol=1e-5)


def test_drawing_raises_the_flip_objective_and_is_deterministic(tiny_unet,
                                                                 tiny_classifier, caplog):
  caplog.set_level(pylogging.INFO)
  unet, unet_params = tiny_unet
  classifier, classifier_params = tiny_classifier
  objective = objectives.FlipObjective(softmin_temperature=1.0)
  flip_pairs = jnp.array([[3, 7], [6, 9], [1, 1]])
  controls = strokes.random_strokes(jax.random.key(1), 3, 2)
  keys = jax.random.split(jax.random.key(2), 3)
  draw = lambda prior_weight, steps, count=3: strokes.draw_strokes(  # the first `count`
      classifier, classifier_params, unet_params, controls[:count],
      jnp.full((count, 2), 1.4), flip_pairs[:count], keys[:count], flow_graphdef=unet,
      objective=objective, steps=steps, learning_rate=0.3, softness=0.4, samples=6,
      prior_weight=prior_weight, guidance=1.0, prior_times=(0.2, 0.8))
  images, scores = draw(0.0, 25)
  assert images.shape == (3, 28, 28) and scores.shape == (25, 3)
  assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
  # Every candidate's own objective rises (its first score is that of the start).
  assert np.all(np.asarray(scores[-1]) > np.asarray(scores[0]))
  np.testing.assert_array_equal(images, draw(0.0, 25)[0])
  steps = [int(m) for m in re.findall(r'stroke drawing: step (\d+)/25', caplog.text)]
  assert steps[:14] == list(range(0, 25, 2)) + [25], caplog.text
  # Candidates are drawn apart: the first alone, with its own key, is the same drawing.
  alone, _ = draw(0.0, 25, count=1)
  np.testing.assert_allclose(alone[0], images[0], atol=1e-4)
  # The flow model's distillation moves the strokes; a zero weight leaves the
  # classifier alone in charge (same start, same keys).
  with_prior, _ = draw(1.0, 5)
  without_prior, _ = draw(0.0, 5)
  assert not np.allclose(with_prior, without_prior, atol=1e-3)


def test_distillation_pulls_towards_the_estimates_of_both_views(tiny_unet):
  unet, unet_params = tiny_unet
  image = jax.random.uniform(jax.random.key(0), (28, 28))
  noise = jax.random.normal(jax.random.key(1), (28, 28))
  pair = jnp.array([3, 7])
  gradient = jax.grad(strokes.distillation_loss, argnums=2)(
      unet, unet_params, image, pair, 0.5, noise, 1.0)
  signal = models.to_signal(image)[None]
  noisy = 0.5 * signal + 0.5 * noise[None]
  upright, turned = flow.view_velocities(unet, unet_params, noisy, 0.5, pair[None], 1.0)
  # d/dx of ½Σ‖2x − 1 − x̂_v‖² = 2·Σ_v (signal − x̂_v), x̂ = noisy − t·v.
  expected = 2 * ((signal - (noisy - 0.5 * upright)) + (signal - (noisy - 0.5 * turned)))
  np.testing.assert_allclose(gradient, expected[0], rtol=1e-4, atol=1e-4)


def test_smoke_pairs_strokes_writes_a_grid_of_stroke_drawings(smoke_workdir, mnist_dir):
  result = run_cli('--experiment=pairs_strokes:smoke', f'--workdir={smoke_workdir}',
                   data_dir=mnist_dir)
  assert result.returncode == 0, result.stderr[-2000:]
  images, pairs = exchange.load_pairs_file(smoke_workdir / 'pairs_strokes/smoke/pairs.npz')
  assert images.shape == (4, 28, 28)
  np.testing.assert_array_equal(pairs, [[3, 7], [3, 9], [6, 7], [6, 9]])
  assert 0.0 <= images.min() and images.max() <= 1.0 and images.max() > 0.5


@pytest.mark.parametrize('key, value, message', [
    ('strokes', 0, 'strokes'), ('softness', 0.0, 'softness'),
    ('prior_times', (0.5, 0.2), 'prior_times'), ('prior_weight', -1.0, 'prior_weight')])
def test_bad_stroke_configs_are_refused(key, value, message):
  config = strokes.default_config()
  config[key] = value
  with pytest.raises(ConfigError, match=message):
    strokes.check(config)
