"""The bench job: how fast the kit trains and ascends, against this machine's peak.

Every figure is the median of `repeats` timed runs after a warm-up, on the
generating classifier's architecture with random weights (speed does not depend on
the weights). FLOPs are XLA's own count (`compiled.cost_analysis()`). Writes
`<workdir>/<experiment>/bench.json` and prints a table; on a shared CPU the ratios,
not the absolute times, are the headline.
"""

import functools
import os
import platform
import shutil
import subprocess
import sys
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from flax import nnx

from flipnum_jax import bench_peers
from flipnum_jax import exchange
from flipnum_jax import io
from flipnum_jax import models
from flipnum_jax import objectives
from flipnum_jax import runner
from flipnum_jax import train
from flipnum_jax.errors import FlipnumError
from flipnum_jax.generators import ascent


def median_seconds(call: Callable[[], Any], repeats: int) -> float:
  """Median wall time of `call()` (its outputs awaited), after one warm-up call."""
  jax.block_until_ready(call())
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(call())
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def flops(compiled) -> float:
  """XLA's FLOP count of a compiled program (a loop body counted once)."""
  analysis = compiled.cost_analysis()
  analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
  return float(analysis.get('flops', float('nan')))


def matmul_peak(size: int, repeats: int) -> dict[str, float]:
  """FLOP/s of a large float32 matrix product: the practical peak of this machine."""
  a, b = (jax.random.normal(k, (size, size)) for k in jax.random.split(jax.random.key(0)))
  product = jax.jit(jnp.dot)
  seconds = median_seconds(lambda: product(a, b), repeats)
  return {'size': size, 'seconds': seconds, 'flops_per_second': 2 * size ** 3 / seconds}


def training_throughput(model_config: ml_collections.ConfigDict, batch_size: int,
                        repeats: int) -> dict[str, float]:
  """One jitted training step (AdamW, ±2-pixel shifts): images/s and FLOP/s."""
  graphdef, params = nnx.split(models.make_classifier(model_config, jax.random.key(0)))
  optimizer = optax.adamw(1e-3)
  opt_state = optimizer.init(params)
  images = jax.random.uniform(jax.random.key(1), (batch_size * 4, 28, 28))
  labels = jnp.arange(batch_size * 4) % 10
  batch = jnp.arange(batch_size)
  loss = train.ClassifierLoss(max_shift=2)
  # The step donates its parameters, so time it on fresh copies each call.
  args = lambda: (graphdef, loss, optimizer, jax.tree.map(jnp.copy, params), None,
                  jax.tree.map(jnp.copy, opt_state), (images, labels), batch,
                  jax.random.key(2), np.float32(0.0))
  compiled = train.fit_step.lower(*args()).compile()
  step_flops = flops(compiled)
  seconds = median_seconds(lambda: compiled(*args()[3:]), repeats)
  return {'batch_size': batch_size, 'step_seconds': seconds,
          'images_per_second': batch_size / seconds, 'step_flops': step_flops,
          'flops_per_second': step_flops / seconds}


def ascent_inputs(count: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Starting images, (a, b) targets (the 100 pairs, repeated) and keys for `count`
  candidates."""
  grid = jnp.asarray(exchange.all_pairs(np.arange(10), np.arange(10)))
  targets = jnp.tile(grid, (-(-count // 100), 1))[:count]
  init = jax.random.uniform(jax.random.key(3), (count, 28, 28))
  return init, targets, jax.random.split(jax.random.key(4), count)


@functools.partial(jax.jit, static_argnames=('graphdef', 'objective', 'optimizer'))
def host_loop_step(graphdef: nnx.GraphDef, params: nnx.State, images: jax.Array,
                   opt_state: optax.OptState, targets: jax.Array, keys: jax.Array, *,
                   objective: ascent.Objective, optimizer: optax.GradientTransformation
                   ) -> tuple[jax.Array, optax.OptState]:
  """One step of `ascent.ascend`'s update for every image, as its own program: the
  same work as one iteration of ascend's `lax.scan`, called from a Python loop."""
  grads = jax.vmap(jax.grad(objective, argnums=2), in_axes=(None, None, 0, 0, 0))(
      graphdef, params, images, targets, keys)
  updates, opt_state = jax.vmap(optimizer.update)(-grads, opt_state, images)
  return jnp.clip(optax.apply_updates(images, updates), 0.0, 1.0), opt_state


def ascent_throughput(graphdef: nnx.GraphDef, params: nnx.State, pairs: int, steps: int,
                      eager_steps: int, repeats: int) -> dict[str, Any]:
  """Image-steps/s of `pairs` pairs three ways: (a) one jit(vmap) program, (b) a
  Python loop over pairs calling a jitted one-pair ascent (a direct port of the
  blog), (c) eager JAX (jit disabled), `eager_steps` steps extrapolated. Also (a′):
  the same batched step as its own jitted program called `steps` times from Python,
  which shows what running inside the `lax.scan` body costs on this backend."""
  init, targets, keys = ascent_inputs(pairs)
  static = dict(objective=objectives.FlipObjective(), optimizer=optax.adam(0.01))
  run = lambda x, t, k, n: ascent.ascend(graphdef, params, x, t, k, steps=n, **static)[0]
  start = time.perf_counter()
  compiled = ascent.ascend.lower(graphdef, params, init, targets, keys, steps=steps,
                                 **static).compile()
  compile_seconds = time.perf_counter() - start
  one_step_flops = flops(ascent.ascend.lower(graphdef, params, init, targets, keys,
                                             steps=1, **static).compile())
  batched = median_seconds(lambda: compiled(params, init, targets, keys), repeats)
  def host_loop():  # the images stay on the device; only the dispatch is Python's
    images, opt_state = init, jax.vmap(static['optimizer'].init)(init)
    for _ in range(steps):
      images, opt_state = host_loop_step(graphdef, params, images, opt_state, targets,
                                         keys, **static)
    return images
  host_loop_seconds = median_seconds(host_loop, repeats)
  per_pair = median_seconds(
      lambda: [run(init[i:i + 1], targets[i:i + 1], keys[i:i + 1], steps)
               for i in range(pairs)], max(1, repeats // 2))
  with jax.disable_jit():
    # Eager JAX compiles each primitive on first use; time that apart, then the steps.
    start = time.perf_counter()
    jax.block_until_ready(run(init, targets, keys, 1))
    eager_first_call = time.perf_counter() - start
    start = time.perf_counter()
    jax.block_until_ready(run(init, targets, keys, eager_steps))
    eager = (time.perf_counter() - start) / eager_steps * steps
  image_steps = pairs * steps
  return {
      'pairs': pairs, 'steps': steps, 'compile_seconds': compile_seconds,
      'batched_seconds': batched, 'per_pair_loop_seconds': per_pair,
      'host_loop_seconds': host_loop_seconds,
      'loop_body_penalty': batched / host_loop_seconds,
      'eager_seconds_extrapolated': eager, 'eager_steps_timed': eager_steps,
      'eager_first_call_seconds': eager_first_call,
      'batched_image_steps_per_second': image_steps / batched,
      'per_pair_image_steps_per_second': image_steps / per_pair,
      'eager_image_steps_per_second': image_steps / eager,
      'batched_over_per_pair': per_pair / batched,
      'batched_over_eager': eager / batched,
      'step_flops': one_step_flops,
      'flops_per_second': one_step_flops * steps / batched,
  }


def candidate_scaling(graphdef: nnx.GraphDef, params: nnx.State, candidates: list[int],
                      steps: int, repeats: int) -> list[dict[str, float]]:
  """Time and XLA's memory estimate of one ascent of 100·K images, per K."""
  static = dict(objective=objectives.FlipObjective(softmin_temperature=1.0, jitter=1.0),
                optimizer=ascent.normalized_sgd(0.3), steps=steps)
  rows = []
  for k in candidates:
    init, targets, keys = ascent_inputs(100 * k)
    compiled = ascent.ascend.lower(graphdef, params, init, targets, keys,
                                   **static).compile()
    memory = compiled.memory_analysis()
    seconds = median_seconds(lambda: compiled(params, init, targets, keys),
                             repeats if k < 16 else 1)
    rows.append({'candidates': k, 'images': 100 * k, 'seconds': seconds,
                 'image_steps_per_second': 100 * k * steps / seconds,
                 'peak_bytes': int(memory.temp_size_in_bytes + memory.argument_size_in_bytes
                                   + memory.output_size_in_bytes)})
    logging.info('K = %d: %.2f s, %.0f image-steps/s.', k, seconds,
                 rows[-1]['image_steps_per_second'])
  return rows


def first_grid_seconds(workdir: str, data_dir: str | None, command: list[str]) -> dict:
  """Process start to the first written grid, with the persistent compilation cache
  cold (emptied) and then warm: `command` run twice in fresh processes, in
  `workdir` (after an untimed run that trains what the command needs)."""
  workdir = os.path.abspath(workdir)  # the subprocesses run in the repository root
  cache = runner.compilation_cache_dir(workdir)
  env = dict(os.environ, **({'FLIPNUM_DATA_DIR': data_dir} if data_dir else {}))

  def run_once() -> None:
    result = subprocess.run([sys.executable, 'run.py', *command, f'--workdir={workdir}'],
                            cwd=runner.EXPERIMENTS_DIR.parent, env=env,
                            capture_output=True, text=True, check=False)
    if result.returncode:
      last_line = (result.stderr.strip().splitlines() or ['no output'])[-1]
      raise FlipnumError(f'bench: {" ".join(command)} failed: {last_line}')

  run_once()  # trains and caches the model it needs, so neither timing does
  timings = {}
  for state in ('cold', 'warm'):
    if state == 'cold':
      shutil.rmtree(cache, ignore_errors=True)
    start = time.perf_counter()
    run_once()
    timings[f'{state}_cache_seconds'] = time.perf_counter() - start
  timings['command'] = ' '.join(['python run.py', *command])
  return timings


def environment() -> dict[str, Any]:
  return {'device': str(jax.devices()[0].device_kind), 'platform': jax.default_backend(),
          'device_count': jax.device_count(), 'cpu_count': os.cpu_count(),
          'machine': platform.machine(), 'jax': jax.__version__,
          'xla_flags': os.environ.get('XLA_FLAGS', '')}


def table(result: dict[str, Any]) -> str:
  peak = result['matmul']['flops_per_second']
  t, a = result['training'], result['ascent']
  g = lambda x: f'{x / 1e9:.1f} GFLOP/s ({100 * x / peak:.0f}% of matmul)'
  lines = [
      f"device: {result['environment']['device']} × {result['environment']['device_count']}"
      f", jax {result['environment']['jax']}",
      f"matmul {result['matmul']['size']}² float32: {peak / 1e9:.1f} GFLOP/s",
      f"training step (batch {t['batch_size']}): {t['images_per_second']:.0f} images/s, "
      + g(t['flops_per_second']),
      f"ascent, {a['pairs']} pairs × {a['steps']} steps: jit(vmap) "
      f"{a['batched_image_steps_per_second']:.0f} image-steps/s, " + g(a['flops_per_second']),
      f"  per-pair loop {a['per_pair_image_steps_per_second']:.0f}, eager "
      f"{a['eager_image_steps_per_second']:.0f} (extrapolated from "
      f"{a['eager_steps_timed']} steps, after a first eager step of "
      f"{a['eager_first_call_seconds']:.1f} s)",
      f"  batched / per-pair loop: {a['batched_over_per_pair']:.1f}×; batched / eager: "
      f"{a['batched_over_eager']:.0f}×; compile {a['compile_seconds']:.1f} s vs run "
      f"{a['batched_seconds']:.1f} s",
      f"  the same batched step called from a Python loop: {a['host_loop_seconds']:.2f} s "
      f"(inside the scan it takes {a['loop_body_penalty']:.2f}× as long)",
      'K candidates per pair (100·K images): ' + ', '.join(
          f"K={r['candidates']} {r['seconds']:.2f} s ({r['image_steps_per_second']:.0f}"
          f" img-steps/s, {r['peak_bytes'] / 2**20:.0f} MiB)" for r in result['scaling'])]
  for peer in result['peers']:
    lines.append(f"peer {peer['framework']} ({peer['threads']} threads), same ascent: "
                 f"{peer['seconds']:.2f} s; the kit is {peer['jax_speedup']:.2f}× as fast "
                 f"(port's max logit difference {peer['max_logit_difference']:.1e})")
  if not result['peers']:
    lines.append('peers: none importable (pip install torch==2.13.0 to add PyTorch)')
  if 'first_grid' in result:
    f = result['first_grid']
    lines.append(f"process start → first grid ({f['command']}): compilation cache cold "
                 f"{f['cold_cache_seconds']:.1f} s, warm {f['warm_cache_seconds']:.1f} s")
  return '\n'.join(lines)


def run_experiment(config: ml_collections.ConfigDict, workspace: io.Workspace,
                   name: str) -> None:
  graphdef, params = nnx.split(models.make_classifier(config.classifier.model,
                                                      jax.random.key(0)))
  result = {'environment': environment()}
  logging.info('Timing a %d² matmul.', config.matmul_size)
  result['matmul'] = matmul_peak(config.matmul_size, config.repeats)
  logging.info('Timing the training step.')
  result['training'] = training_throughput(config.classifier.model,
                                           config.classifier.batch_size, config.repeats)
  logging.info('Timing ascent: batched, per pair, eager.')
  result['ascent'] = ascent_throughput(graphdef, params, config.pairs, config.steps,
                                       config.eager_steps, config.repeats)
  logging.info('Timing the PyTorch port of the batched ascent, if PyTorch imports.')
  init, targets, _ = ascent_inputs(config.pairs)
  peer = bench_peers.torch_ascent(graphdef, params, np.asarray(init), np.asarray(targets),
                                  config.steps, 0.01, config.repeats)
  result['peers'] = [peer] if peer else []
  if peer:
    peer['jax_speedup'] = peer['seconds'] / result['ascent']['batched_seconds']
  logging.info('Timing K candidates per pair.')
  result['scaling'] = candidate_scaling(graphdef, params, list(config.candidates),
                                        config.scaling_steps, config.repeats)
  if config.first_grid:
    logging.info('Timing process start to first grid, compilation cache cold and warm.')
    # A workdir of its own, so the timed runs neither overwrite the user's outputs
    # nor find the user's compilation cache.
    result['first_grid'] = first_grid_seconds(
        str(workspace.output_dir(name) / 'first_grid'), workspace.data_dir,
        config.first_grid.split())
  out_dir = workspace.output_dir(name)
  io.write_json(out_dir / 'bench.json', result)
  print(table(result))
  print(f'{name}: wrote {out_dir / "bench.json"}')
