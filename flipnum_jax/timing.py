"""Compile time apart from run time, for the jitted programs the jobs log, and
progress from inside a compiled loop."""

import functools
import time
from typing import Any, Callable, NamedTuple

import jax
import numpy as np
from absl import logging


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


# When each labelled loop logged its step 0, in this process (host side only).
_loop_started: dict[str, float] = {}


def _log_step(label: str, steps: int, step: np.ndarray, _) -> None:
  step = int(step)
  now = time.perf_counter()
  if step == 0:
    _loop_started[label] = now
    logging.info('%s: step 0/%d.', label, steps)
    return
  elapsed = now - _loop_started.get(label, now)
  logging.info('%s: step %d/%d, %.0f s, about %.0f s left.', label, step, steps,
               elapsed, elapsed / step * (steps - step))


def log_progress(label: str, step: jax.Array, steps: int, after: jax.Array) -> None:
  """Inside a compiled loop of `steps` steps, at the start of step `step` (and with
  `step` = `steps` after the loop): logs `label`'s progress every tenth of the loop,
  with the seconds since step 0 and an estimate of those left. `after` is an array
  the previous step computed, so that the host callback runs once that step is done
  rather than wherever XLA would schedule it. JAX leaves a program with a host
  callback out of its persistent compilation cache, so a program that logs is
  compiled again in every process (seconds, against minutes of silence)."""
  due = (step % max(1, steps // 10) == 0) | (step == steps)
  jax.lax.cond(due, lambda: jax.debug.callback(
      functools.partial(_log_step, label, steps), step, after.ravel()[0]),
               lambda: None)
