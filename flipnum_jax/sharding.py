"""Spreads a batch of candidates over every device, of one process or of several.

The same code path runs on one device, on several devices of one process (several
GPUs, or `XLA_FLAGS=--xla_force_host_platform_device_count=N` on a CPU) and across
processes: arrays whose leading (batch) axis divides evenly are placed with a
`NamedSharding` over a one-axis `Mesh` of all devices, and `jax.jit` partitions the
vmapped program along that axis (each image's ascent or sampling is independent, so
no device waits for another). On a single device the placement is a no-op.

Across processes (after `jax.distributed.initialize()`, which `runner` calls when
`FLIPNUM_DISTRIBUTED=1`), `jax.devices()` lists every process's devices, and every
process runs the same program on the same inputs (same config, same seed). Each
process makes the whole batch, but places only the rows its own devices own
(`place`), after waiting for the others (`wait_for_all_processes`); the results
come back whole to every process (`to_host`), so that whatever follows (choosing
candidates, scoring) is the same everywhere, and only process 0 writes it (see
`io.atomic_path`).
"""

import jax
import numpy as np
from jax._src import distributed
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

BATCH_AXIS = 'batch'
# How long a process waits for the others before a program that spans them all:
# longer than training the slowest model, which another process may be loading.
BARRIER_TIMEOUT_MS = 2 * 60 * 60 * 1000


def batch_sharding() -> NamedSharding:
  """Splits an array's leading axis over all devices, the rest replicated."""
  mesh = Mesh(np.array(jax.devices()), (BATCH_AXIS,))
  return NamedSharding(mesh, PartitionSpec(BATCH_AXIS))


def place(array: jax.Array, sharding: NamedSharding) -> jax.Array:
  """`array`, which this process holds whole, laid out by `sharding`.

  Across processes each process puts on its own devices the parts that they own
  (and so must hold the same `array` as every other process): `jax.device_put`
  refuses there an array committed to one of this process's devices (the output
  of a restored model, say), and checks any other against the other processes'
  copies through the devices' collectives.
  """
  if sharding.is_fully_addressable:
    return jax.device_put(array, sharding)
  return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])


def wait_for_all_processes() -> None:
  """Returns once every process has called this (at once in a single process).

  A program over several processes' devices exchanges data through XLA's CPU
  collectives (gloo), whose rendezvous gives up after 30 s without a process; but
  one process may reach the program minutes late (it trained a model that another
  loaded, or compiled what another found in its compilation cache). The barrier
  of JAX's coordination service waits as long as told; JAX has no public one
  (`multihost_utils.sync_global_devices` runs on the very collectives concerned).
  """
  if jax.process_count() > 1:
    distributed.global_state.client.wait_at_barrier('flipnum_shard_batch',
                                                    BARRIER_TIMEOUT_MS)


def shard_batch(*arrays: jax.Array) -> tuple[jax.Array, ...]:
  """`arrays` placed split along their leading axis over all devices, when every
  leading axis divides by the device count; otherwise left where they are (then
  every process computes the whole batch on its own devices). Across processes,
  every process must call this with the same `arrays`, and waits here for the
  others (`wait_for_all_processes`)."""
  devices = jax.device_count()
  if devices == 1 or any(a.shape[0] % devices for a in arrays):
    return arrays
  wait_for_all_processes()
  sharding = batch_sharding()
  return tuple(place(a, sharding) for a in arrays)


def to_host(array: jax.Array) -> np.ndarray:
  """`array` whole, as a NumPy array on this host.

  An array split over several processes' devices is gathered from all of them
  (`np.asarray` would fail: this process cannot read the others' devices); every
  process must call this for the same array, as every process runs the same code.
  """
  if not array.is_fully_addressable:
    return multihost_utils.process_allgather(array, tiled=True)
  return np.asarray(array)
