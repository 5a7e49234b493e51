import numpy as np
import pytest
from PIL import Image

from flipnum_jax import number
from flipnum_jax.errors import ConfigError
from tests.test_run import assert_one_line_error, run_cli


def test_cells_read_the_rotated_number_in_reverse():
  assert number.cell_pairs('1961', '1961').tolist() == [[1, 1], [9, 6], [6, 9], [1, 1]]
  assert number.cell_pairs('123', '456').tolist() == [[1, 6], [2, 5], [3, 4]]


def test_turning_the_composed_number_equals_composing_the_turned_cells():
  cells = np.random.default_rng(0).random((3, 28, 28)).astype(np.float32)
  cells[:, :, :5] = 0.0  # uneven margins, so the crops differ per side
  cells[1, :, 20:] = 0.0
  composed = number.compose(cells)
  assert composed.shape[0] == 28 and composed.shape[1] < 3 * 28 + 4 * number.GAP
  turned_cells = cells[::-1, ::-1, ::-1]  # each cell turned, in reverse order
  np.testing.assert_array_equal(composed[::-1, ::-1], number.compose(turned_cells))


@pytest.mark.parametrize('upright, rotated, message', [
    ('123', '12', 'same number of digits'),
    ('12a', '123', 'digits 0–9'),
    ('', '', 'digits 0–9'),
    ('1234567890123', '1234567890123', 'at most 12'),
])
def test_bad_numbers_are_refused(upright, rotated, message):
  with pytest.raises(ConfigError, match=message):
    number.cell_pairs(number.check_number('upright', upright),
                      number.check_number('rotated', rotated))


def test_bad_number_on_the_command_line_exits_2_and_writes_nothing(tmp_path):
  result = run_cli('--experiment=number:smoke', '--config.upright=19x1',
                   '--config.rotated=1961', f'--workdir={tmp_path}')
  assert_one_line_error(result, 'upright must be a string of digits 0–9')
  assert not any(tmp_path.iterdir())


def test_number_smoke_writes_picture_arrays_and_animation(smoke_workdir, mnist_dir):
  result = run_cli('--experiment=number:smoke', '--config.upright=307',
                   '--config.rotated=281', f'--workdir={smoke_workdir}', env_data_dir=mnist_dir)
  assert result.returncode == 0, result.stderr[-3000:]
  out = smoke_workdir / 'number' / 'smoke'
  with np.load(out / 'number.npz') as npz:
    assert npz['pairs'].tolist() == [[3, 1], [0, 8], [7, 2]]
    assert npz['images'].shape == (3, 28, 28) and npz['images'].dtype == np.float32
    assert npz['image'].shape[0] == 28
    np.testing.assert_array_equal(npz['image'], number.compose(npz['images']))
  assert (out / 'number.png').read_bytes().startswith(b'\x89PNG')
  with Image.open(out / 'number.gif') as gif:
    assert gif.n_frames == 36  # 0° to 180° and back in 10° steps
