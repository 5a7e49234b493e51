"""Compile time apart from run time, for the jitted programs the jobs log."""

import time
from typing import Any, Callable, NamedTuple

import jax
import numpy as np


class Seconds(NamedTuple):
  compile: float
  run: float


def compile_and_run(jitted, *args, static_positions: tuple[int, ...] = (0,),
                    **static) -> tuple[Any, Seconds]:
  """Calls `jitted(*args, **static)` compiled ahead of time, so that compiling and
  running are timed apart. `static` are its keyword (static) arguments and
  `static_positions` the positions of its static positional ones (by default the
  first, the kit's graphdefs), which the compiled program no longer takes."""
  start = time.perf_counter()
  compiled = jitted.lower(*args, **static).compile()
  compiled_at = time.perf_counter()
  dynamic = [a for i, a in enumerate(args) if i not in static_positions]
  outputs = jax.block_until_ready(compiled(*dynamic))
  return outputs, Seconds(compiled_at - start, time.perf_counter() - compiled_at)


def median_seconds(call: Callable[[], Any], repeats: int) -> float:
  """Median wall time of `call()` (its outputs awaited: JAX arrays are waited for,
  anything else, a PyTorch tensor say, is ready when returned), after one warm-up
  call."""
  jax.block_until_ready(call())
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(call())
    times.append(time.perf_counter() - start)
  return float(np.median(times))
