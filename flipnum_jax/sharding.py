"""Spreads a batch of candidates over every available device.

The same code path runs on one device or many: arrays whose leading (batch) axis
divides evenly are placed with a `NamedSharding` over a one-axis `Mesh` of all
devices, and `jax.jit` partitions the vmapped program along that axis (each image's
ascent or sampling is independent, so no device waits for another). On a single
device the placement is a no-op. Across hosts, call `jax.distributed.initialize()`
first; `jax.devices()` then lists every host's devices (see the README).
"""

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

BATCH_AXIS = 'batch'


def batch_sharding() -> NamedSharding:
  """Splits an array's leading axis over all devices, the rest replicated."""
  mesh = Mesh(np.array(jax.devices()), (BATCH_AXIS,))
  return NamedSharding(mesh, PartitionSpec(BATCH_AXIS))


def shard_batch(*arrays: jax.Array) -> tuple[jax.Array, ...]:
  """`arrays` placed split along their leading axis over all devices, when every
  leading axis divides by the device count; otherwise left where they are."""
  devices = jax.device_count()
  if devices == 1 or any(a.shape[0] % devices for a in arrays):
    return arrays
  sharding = batch_sharding()
  return tuple(jax.device_put(a, sharding) for a in arrays)
