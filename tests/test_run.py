"""The command line end to end, in subprocesses, as a user runs it."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import jax
from flax import nnx

from experiments import train as train_experiment
from flipnum_jax import bench_peers
from flipnum_jax import checkpoints
from flipnum_jax import data
from flipnum_jax import io
from flipnum_jax import models
from flipnum_jax import runner
from flipnum_jax import train
from tests.conftest import REPO


def run_cli(*args, data_dir=None, env_data_dir=None):
  env = {k: v for k, v in os.environ.items() if k != 'FLIPNUM_DATA_DIR'}
  if env_data_dir:
    env['FLIPNUM_DATA_DIR'] = str(env_data_dir)
  command = [sys.executable, 'run.py', *args]
  if data_dir:
    command.append(f'--data_dir={data_dir}')
  return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                        timeout=300)


def assert_one_line_error(result, pattern):
  assert result.returncode == 2, result.stderr[-2000:]
  assert 'Traceback' not in result.stderr
  errors = [l for l in result.stderr.splitlines() if l.startswith('run.py: error:')]
  assert len(errors) == 1, result.stderr[-2000:]
  assert pattern in errors[0]


def test_train_smoke_end_to_end(tmp_path, mnist_dir):
  result = run_cli('--experiment=train:smoke', f'--workdir={tmp_path}',
                   env_data_dir=mnist_dir)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'test accuracy' in result.stdout
  metrics = json.loads((tmp_path / 'models/classifier_smoke/metrics.json').read_text())
  # The saved weights are the model whose accuracy was recorded, and the printed one.
  config = train_experiment.classifier_config('smoke')
  model, _ = checkpoints.load(tmp_path / 'models/classifier_smoke',
                              lambda: models.make_classifier(config.model, jax.random.key(1)))
  mnist = data.load_mnist(mnist_dir)
  assert train.accuracy(*nnx.split(model), mnist.test_images,
                        mnist.test_labels) == metrics['test_accuracy']
  assert f'test accuracy {metrics["test_accuracy"]:.4f}' in result.stdout
  assert 'epoch 1/1' in result.stderr  # progress is logged

  # A damaged checkpoint is refused with one line.
  for path in (tmp_path / 'models/classifier_smoke/params').rglob('*'):
    if path.is_file():
      path.write_bytes(b'garbage')
  result = run_cli('--experiment=train:smoke', f'--workdir={tmp_path}',
                   data_dir=mnist_dir)
  assert_one_line_error(result, 'damaged')


@pytest.mark.parametrize('args, pattern', [
    (['--experiment=nope'], "unknown experiment 'nope'; known: "),
    (['--experiment=train:bogus'], "variants"),
    (['--experiment=train', '--config.classifier.nope=1'], "no config key 'classifier.nope'"),
    (['--experiment=train', '--config.classifier.epochs=ten'], 'invalid literal'),
    (['--experiment=train', 'extra'], 'unexpected arguments'),
    (['--experiment=train', '--config.job=x'], "job 'x' is not one of"),
    ([], '--experiment'),
])
def test_bad_flags_are_one_line_errors(args, pattern, tmp_path):
  result = run_cli(*args, f'--workdir={tmp_path}')
  assert_one_line_error(result, pattern)
  assert not any(tmp_path.iterdir())  # nothing written


def test_a_variant_writes_beside_the_plain_run_never_over_it():
  assert runner.output_name('pairs') == 'pairs'
  assert runner.output_name('pairs:smoke') == 'pairs/smoke'


def test_a_workdir_that_cannot_be_created_is_a_one_line_error(tmp_path):
  blocker = tmp_path / 'a_file'
  blocker.write_text('not a folder')
  result = run_cli('--experiment=train:smoke', f'--workdir={blocker}/runs')
  assert_one_line_error(result, f'cannot create --workdir {blocker}/runs')


def test_missing_and_corrupt_data_are_one_line_errors(tmp_path, mnist_dir):
  result = run_cli('--experiment=train:smoke', f'--workdir={tmp_path / "w"}',
                   data_dir=tmp_path / 'nowhere')
  assert_one_line_error(result, 'does not exist')

  corrupt = tmp_path / 'corrupt'
  shutil.copytree(mnist_dir, corrupt)
  images = corrupt / 'train-images-idx3-ubyte.gz'
  images.write_bytes(images.read_bytes()[:5000])
  result = run_cli('--experiment=train:smoke', f'--workdir={tmp_path / "w"}',
                   env_data_dir=corrupt)
  assert_one_line_error(result, 'train-images-idx3-ubyte.gz')
  assert not (tmp_path / 'w/models/classifier_smoke/metrics.json').exists()


def test_bench_smoke_times_every_part_and_writes_its_json(tmp_path, mnist_dir):
  # The first-grid timing runs any command three times in fresh processes; a
  # reading test's sheets need no training and no compile, so the plumbing is
  # checked in seconds.
  images = np.zeros((2, 28, 28), np.float32)
  io.write_npz(tmp_path / 'mine' / 'pairs.npz', images=images, pairs=np.array([[1, 1], [8, 8]]))
  first_grid = (f"--experiment=reading_test:smoke --config.inputs={tmp_path / 'mine' / 'pairs.npz'} "
                '--config.natural_flips_per_digit=0 --config.format=sheets --config.raters=a')
  result = run_cli('--experiment=bench:smoke', f'--workdir={tmp_path}',
                   f'--config.first_grid={first_grid}', env_data_dir=mnist_dir)
  assert result.returncode == 0, result.stderr[-3000:]
  bench = json.loads((tmp_path / 'bench/smoke/bench.json').read_text())
  # The timed first-grid runs use a workdir of their own: the user's outputs stay.
  assert not (tmp_path / 'reading_test').exists()
  assert (tmp_path / 'bench/smoke/first_grid/reading_test/smoke/test.npz').is_file()
  assert 0 < bench['first_grid']['warm_cache_seconds']
  assert 0 < bench['first_grid']['cold_cache_seconds']
  assert bench['environment']['jax'] == jax.__version__
  # XLA's FLOP count is of the program the kit trains with: forward and backward of
  # the smoke CNN, 2–4× the forward pass's multiply-adds counted here by hand.
  forward = 2 * (14 * 14 * 8 * 4 * 4 * 1 + 7 * 7 * 16 * 4 * 4 * 8 + 784 * 32 + 32 * 10)
  per_image = bench['training']['step_flops'] / bench['training']['batch_size']
  assert 2 * forward <= per_image <= 4 * forward, (per_image, forward)
  assert [r['candidates'] for r in bench['scaling']] == [1, 2]
  # Twice the images need more memory (XLA's own estimate of the compiled program).
  assert bench['scaling'][1]['peak_bytes'] > bench['scaling'][0]['peak_bytes']
  assert 'batched / per-pair loop' in result.stdout
  # The main job's sampler: pairs × K images, each step's parts no more than the step
  # (XLA's count: the U-Net pass and the classifier gradient are in the step's FLOPs).
  sampler = bench['sampler']
  assert sampler['images'] == 8 * 2 and sampler['steps'] == 2
  assert sampler['unet_pass_flops'] + sampler['classifier_gradient_flops'] <= (
      1.01 * sampler['step_flops'])
  assert sampler['unet_pass_flops'] > sampler['classifier_gradient_flops'] > 0
  assert bench['unet_training']['batch_size'] == 64
  for key in ('training', 'unet_training', 'sampler', 'ascent'):
    assert 0 < bench[key]['fraction_of_peak'], key
  # With PyTorch, every peer is timed and the sampler's port lands on the kit's images.
  if bench_peers.import_torch() is None:
    assert not bench['peers'] and 'not importable' in result.stdout
  else:
    peers = {peer['task']: peer for peer in bench['peers']}
    assert set(peers) == {'classifier training', 'U-Net training', 'sampler', 'ascent'}
    # (Not every image: see bench_peers.torch_sampler on ReLU kinks.)
    assert peers['sampler']['images_within_1e-4'] >= 0.9
    assert all(peer['kit_speedup'] > 0 for peer in peers.values())
