import numpy as np
import pytest

from flipnum_jax import exchange
from flipnum_jax.errors import DataError


def test_pairs_and_samples_files_round_trip_and_bad_ones_are_never_written(tmp_path):
  images = np.random.default_rng(0).random((4, 28, 28)).astype(np.float32)
  pairs = exchange.all_pairs(np.array([3, 6]), np.array([7, 9]))
  exchange.write_pairs_file(tmp_path / 'pairs.npz', images, pairs)
  read_images, read_pairs = exchange.load_pairs_file(tmp_path / 'pairs.npz')
  np.testing.assert_array_equal(read_images, images)
  assert read_pairs.tolist() == [[3, 7], [3, 9], [6, 7], [6, 9]]  # a-major
  with pytest.raises(DataError, match=r'\[0, 1\]'):
    exchange.write_pairs_file(tmp_path / 'bad.npz', images * 2, pairs)
  with pytest.raises(DataError, match='digits 0–9'):
    exchange.write_samples_file(tmp_path / 'bad.npz', images, np.array([1, 2, 3, 12]))
  assert not (tmp_path / 'bad.npz').exists()
  exchange.write_samples_file(tmp_path / 'samples.npz', images, np.array([1, 2, 3, 4]))
  assert exchange.load_samples_file(tmp_path / 'samples.npz')[1].tolist() == [1, 2, 3, 4]


def test_scores_round_trip_and_a_malformed_scores_file_is_a_data_error(tmp_path):
  pairs = np.array([[3, 7], [6, 9]])
  summary = exchange.scores_summary(pairs, np.array([0.9, 0.4]), np.array([0.8, 0.7]),
                                    np.array([[True, False], [True, True]]),
                                    {'run_seconds': 1.0}, np.array([0.05, 0.25]))
  assert summary['worst_pair'] == [6, 9]
  assert summary['mean_candidate_spread'] == pytest.approx(0.15)
  assert summary['mean_min_confidence'] == pytest.approx(0.6)
  exchange.write_scores(tmp_path / exchange.SCORES_FILE, summary)
  assert exchange.read_scores(tmp_path / exchange.SCORES_FILE) == summary
  assert exchange.read_scores(tmp_path / 'none.json') is None
  (tmp_path / 'bad.json').write_text('{"pairs": [{"upright": 3}]}')
  with pytest.raises(DataError, match='not a scores file'):
    exchange.read_scores(tmp_path / 'bad.json')
