"""The batch split over several devices, of one process or of two, gives the
single-device result.

XLA_FLAGS must be set before JAX starts, so the checks run in subprocesses with
host devices standing in for accelerators.
"""

import os
import pathlib
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest

from flipnum_jax import exchange
from flipnum_jax import runner
from flipnum_jax.errors import ConfigError
from tests.conftest import REPO

SCRIPT = '''
import jax, jax.numpy as jnp, numpy as np, ml_collections, optax
from flax import nnx
from flipnum_jax import models, objectives, sharding
from flipnum_jax.generators import ascent, flow
assert jax.device_count() == 4, jax.devices()
spec = models.classifier_spec()
spec.conv_features, spec.hidden = (4, 8), 16
graphdef, params = nnx.split(models.make_classifier(spec, jax.random.key(0)))
init = jax.random.uniform(jax.random.key(1), (8, 28, 28))
pairs = jnp.array([[a, (a + 3) % 10] for a in range(8)])
keys = jax.random.split(jax.random.key(2), 8)
run = lambda *batch: ascent.ascend(graphdef, params, *batch, objective=objectives.FlipObjective(
    softmin_temperature=1.0, jitter=1.0), optimizer=optax.adam(0.05), steps=5)[0]
single = run(*jax.device_put((init, pairs, keys), jax.devices()[0]))
placed = sharding.shard_batch(init, pairs, keys)
assert len(placed[0].sharding.device_set) == 4
split = run(*placed)
assert len(split.sharding.device_set) == 4, split.sharding
np.testing.assert_allclose(np.asarray(split), np.asarray(single), atol=1e-5)
unet_graphdef, unet_params = nnx.split(models.make_unet(
    ml_collections.ConfigDict({'features': 16, 'cond_dim': 32}), jax.random.key(3)))
draw = lambda noise, p: flow.sample_flips(unet_graphdef, unet_params, noise, p,
                                          jax.random.key(4), 2.0, steps=3)
noise = jax.random.normal(jax.random.key(5), (8, 28, 28))
single = draw(*jax.device_put((noise, pairs), jax.devices()[0]))
split = draw(*sharding.shard_batch(noise, pairs))
assert len(split.sharding.device_set) == 4
np.testing.assert_allclose(np.asarray(split), np.asarray(single), atol=1e-5)
assert sharding.shard_batch(init[:3])[0].sharding.device_set == init.sharding.device_set
print('SHARDED_OK')
'''


def test_sharded_ascent_and_sampling_equal_single_device():
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=4',
             JAX_PLATFORMS='cpu')
  result = subprocess.run([sys.executable, '-c', SCRIPT], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'SHARDED_OK' in result.stdout


# One process of a two-process run: joins it as run.py does, checks that it sees
# 2 of 4 devices and that the candidates are split over all 4, runs pairs:smoke.
PROCESS_SCRIPT = '''
import sys, jax
from flipnum_jax import runner, sharding
runner.initialize_distributed()
assert (jax.local_device_count(), jax.device_count()) == (2, 4), jax.devices()
spans = []
def recording_shard_batch(*arrays, shard_batch=sharding.shard_batch):
  placed = shard_batch(*arrays)
  spans.extend(len(a.sharding.device_set) for a in placed)
  return placed
sharding.shard_batch = recording_shard_batch
name, config = runner.load_config('pairs:smoke')
runner.run(runner.output_name('pairs:smoke'), config, sys.argv[1], None)
assert spans and set(spans) == {4}, spans
print('PROCESS_OK')
'''


def test_distributed_settings_must_be_integers():
  with pytest.raises(ConfigError, match=runner.PROCESS_ID_ENV):
    runner.initialize_distributed({runner.DISTRIBUTED_ENV: '1',
                                   runner.PROCESS_ID_ENV: 'first'})


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _files(folder: pathlib.Path) -> set[pathlib.Path]:
  return {p.relative_to(folder) for p in folder.rglob('*') if p.is_file()}


def test_two_processes_draw_what_one_process_draws(tmp_path, mnist_dir, smoke_workdir):
  """pairs:smoke over 2 processes × 2 CPU devices, against one ordinary process.

  The reference is the session's plain pairs:smoke run (test_flow's), else one
  drawn here; both processes load its models, so nothing is trained twice.
  Process 1 must write nothing. Images agree
  to 1e-5, not bit for bit: the split sampler is compiled for 2 candidates per
  device instead of 8, and XLA's CPU kernels round differently for other shapes
  (≈ 7e-7 here; 4 devices of one process differ from one device as much).
  """
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  env.update(FLIPNUM_DATA_DIR=str(mnist_dir), JAX_PLATFORMS='cpu')
  output = runner.output_name('pairs:smoke')
  # The single-process reference: the session's plain pairs:smoke run (test_flow)
  # when there is one, else drawn here.
  single = smoke_workdir
  if not (single / output / exchange.PAIRS_FILE).is_file():
    single = tmp_path / 'single'
    result = subprocess.run(
        [sys.executable, 'run.py', '--experiment=pairs:smoke', f'--workdir={single}'],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
  workdirs = [tmp_path / 'process_0', tmp_path / 'process_1']
  for workdir in workdirs:
    shutil.copytree(single / 'models', workdir / 'models')
  before = _files(workdirs[1])
  env.update({'XLA_FLAGS': '--xla_force_host_platform_device_count=2',
              runner.DISTRIBUTED_ENV: '1', runner.NUM_PROCESSES_ENV: '2',
              'JAX_COORDINATOR_ADDRESS': f'127.0.0.1:{_free_port()}'})
  processes = [subprocess.Popen(
      [sys.executable, '-c', PROCESS_SCRIPT, str(workdir)], cwd=REPO,
      env=dict(env, **{runner.PROCESS_ID_ENV: str(i)}), stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True) for i, workdir in enumerate(workdirs)]
  try:
    outputs = [process.communicate(timeout=300) for process in processes]
  finally:
    for process in processes:
      process.kill()
  for process, (stdout, stderr) in zip(processes, outputs):
    assert process.returncode == 0 and 'PROCESS_OK' in stdout, stderr[-3000:]
  # Only the writer says where the outputs are.
  assert 'outputs in' in outputs[0][0] and 'outputs in' not in outputs[1][0]

  images, pairs = exchange.load_pairs_file(workdirs[0] / output / exchange.PAIRS_FILE)
  single_images, single_pairs = exchange.load_pairs_file(
      single / output / exchange.PAIRS_FILE)
  np.testing.assert_array_equal(pairs, single_pairs)
  np.testing.assert_allclose(images, single_images, atol=1e-5, rtol=0)
  assert _files(workdirs[1]) == before
