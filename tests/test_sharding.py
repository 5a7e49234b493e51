"""The batch split over several devices gives the single-device result.

XLA_FLAGS must be set before JAX starts, so the check runs in a subprocess with
four host devices standing in for four accelerators.
"""

import os
import subprocess
import sys

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
