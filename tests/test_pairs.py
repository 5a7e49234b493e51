import json

import numpy as np
import pytest

from experiments import blog_pairs
from flipnum_jax import exchange
from flipnum_jax import generators
from flipnum_jax import pairs
from flipnum_jax.errors import ConfigError
from tests.conftest import override
from tests.test_run import assert_one_line_error, run_cli


def test_all_pairs_is_a_major():
  grid = exchange.all_pairs(np.arange(10), np.arange(10))
  assert grid.shape == (100, 2)
  for a in range(10):
    for b in range(10):
      assert grid[10 * a + b].tolist() == [a, b]


@pytest.mark.parametrize('digits', [(3, 10), (-1,), (), (2, 2), (1.5,), (True,)])
def test_check_digits_refuses_non_digits(digits):
  with pytest.raises(ConfigError, match='distinct digits 0–9'):
    pairs.check_digits('upright_digits', digits)


def test_smoke_pairs_and_dreams_write_their_outputs(smoke_workdir, mnist_dir):
  # pairs_ascent:smoke: K = 2 candidates per pair, example blends, jitter, normalized steps.
  result = run_cli('--experiment=pairs_ascent:smoke', f'--workdir={smoke_workdir}',
                   env_data_dir=mnist_dir)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'image-steps/s' in result.stderr and 'compile' in result.stderr
  assert 'Ascent of 8 images' in result.stderr  # 4 pairs × 2 candidates in one batch
  out = smoke_workdir / 'pairs_ascent' / 'smoke'
  assert not (smoke_workdir / 'pairs_ascent' / 'pairs.npz').exists()  # the plain run's place
  with np.load(out / 'pairs.npz') as npz:
    assert set(npz.files) == {'images', 'pairs'}
    images, grid = npz['images'], npz['pairs']
  assert images.dtype == np.float32 and images.shape == (4, 28, 28)
  assert images.min() >= 0.0 and images.max() <= 1.0
  assert np.issubdtype(grid.dtype, np.integer)
  assert grid.tolist() == [[3, 7], [3, 9], [6, 7], [6, 9]]  # a-major
  scores = json.loads((out / 'scores.json').read_text())
  assert [[p['upright'], p['rotated']] for p in scores['pairs']] == grid.tolist()
  minimum = [p['min'] for p in scores['pairs']]
  assert all(m == min(p['p_upright'], p['p_rotated']) for m, p in zip(minimum, scores['pairs']))
  for p in scores['pairs']:  # a probability above ½ is the top class; the reverse need not be
    assert isinstance(p['reads_upright'], bool) and isinstance(p['reads_rotated'], bool)
    assert p['reads_upright'] or p['p_upright'] <= 0.5
    assert p['reads_rotated'] or p['p_rotated'] <= 0.5
  assert scores['mean_min_confidence'] == pytest.approx(np.mean(minimum))
  assert scores['worst_pair'] == grid[int(np.argmin(minimum))].tolist()
  # K = 2 different candidates per pair lie apart; the mean is over the pairs.
  spread = [p['candidate_spread'] for p in scores['pairs']]
  assert all(d > 0 for d in spread)
  assert scores['mean_candidate_spread'] == pytest.approx(np.mean(spread))
  for picture in ('grid.png', 'grid_rotated.png', 'candidates.png'):
    assert (out / picture).read_bytes().startswith(b'\x89PNG')

  result = run_cli('--experiment=dreams:smoke', f'--workdir={smoke_workdir}',
                   env_data_dir=mnist_dir)
  assert result.returncode == 0, result.stderr[-3000:]
  with np.load(smoke_workdir / 'dreams/smoke/dreams.npz') as npz:
    for key in ('class_means', 'from_noise', 'from_mean'):
      assert npz[key].shape == (10, 28, 28)
      assert npz[key].min() >= 0.0 and npz[key].max() <= 1.0
  assert (smoke_workdir / 'dreams/smoke/dreams.png').read_bytes().startswith(b'\x89PNG')


@pytest.mark.parametrize('key, value, message', [  # ascent settings: test_ascent.py
    ('generator.steps', 0, 'steps must be positive'),
    ('generator.init', 'zeros', 'init must be one of'),
    ('candidates', 0, 'candidates must be ≥ 1'),
    ('objective.samples', 0, 'samples must be ≥ 1'),
    ('objective.tv_weight', -1.0, 'must be ≥ 0'),
])
def test_bad_method_configs_are_refused(key, value, message):
  config = blog_pairs.get_config('smoke')
  override(config, key, value)
  with pytest.raises(ConfigError, match=message):
    generators.check(config)


@pytest.mark.parametrize('override, message', [
    ('--config.upright_digits=(3,11)', 'distinct digits 0–9'),
    ('--config.generator.learning_rate=nan', 'learning_rate must be finite and positive'),
])
def test_bad_pair_configs_exit_2_and_write_nothing(override, message, tmp_path):
  result = run_cli('--experiment=blog_pairs:smoke', override, f'--workdir={tmp_path}')
  assert_one_line_error(result, message)
  assert not any(tmp_path.iterdir())


def test_the_main_job_runs_with_the_committed_models(tmp_path, mnist_dir):
  # `pairs` as the README's first command runs it (the readers' model in the guide,
  # a second round, the product choice), on 2 × 2 pairs and two steps, nothing
  # trained: every model it needs is in pretrained/.
  result = run_cli('--experiment=pairs', f'--workdir={tmp_path}',
                   '--config.upright_digits=(3,6)', '--config.rotated_digits=(7,9)',
                   '--config.generator.steps=2', '--config.candidates=2',
                   '--config.hard_pairs=1', '--config.hard_pair_candidates=3',
                   data_dir=mnist_dir)
  assert result.returncode == 0, result.stderr[-2000:]
  out = tmp_path / 'pairs'
  assert exchange.load_pairs_file(out / 'pairs.npz')[1].tolist() == [[3, 7], [3, 9],
                                                                      [6, 7], [6, 9]]
  assert len(exchange.load_pairs_file(out / 'candidates.npz')[1]) == 4 * 2 + 3
  assert not (tmp_path / 'models').exists()
  assert '+ 3 for the 1 pairs rated worst' in result.stdout
