"""The bench job: how fast the kit samples, trains and ascends, against this
machine's peak and against PyTorch ports of the same work (`bench_peers`).

The headline is the main job's sampler, `flow.sample_flips` with the `pairs`
settings: the U-Net's view-averaged, classifier-free guided velocity (4N images per
step) plus the flip objective's gradient on the generating classifier, for 100 pairs
× K candidates. Besides its image-steps/s and compile time, bench splits a step into
its parts (the U-Net pass, the classifier gradient) and runs the same step outside
flow.py's scan (a host loop of one jitted step; the scan unrolled): those variants
use bench's copy of the step (`euler_step`, checked against the kit's by
tests/test_bench.py), so that levers flow.py does not offer are measured without
changing it. The training steps are those of the generating classifier and of the
U-Net (flow matching, the `diffusion` experiment's batch); the old ascent and its
K scaling stay as they were.

Every figure is the median of `repeats` timed runs after a warm-up, on the
networks' architectures with random weights (speed does not depend on the
weights). FLOPs are XLA's own count (`compiled.cost_analysis()`) of one step
compiled alone, since a loop body is counted once. The PyTorch peers run on every
core (as XLA does) and are skipped when `torch` does not import. Writes
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
from typing import Any, NamedTuple

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
from flipnum_jax.generators import flow
from flipnum_jax.timing import median_seconds


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


def training_throughput(model: nnx.Module, loss: Any,
                        optimizer: optax.GradientTransformation, batch_size: int,
                        repeats: int, ema_decay: float = 0.0) -> dict[str, float]:
  """One jitted `train.fit_step` of `model` on `loss` (with the weights' EMA when
  `ema_decay`, as the flow model trains): images/s and FLOP/s."""
  graphdef, params = nnx.split(model)
  opt_state = optimizer.init(params)
  ema_params = params if ema_decay else None
  images = jax.random.uniform(jax.random.key(1), (batch_size * 4, 28, 28))
  labels = jnp.arange(batch_size * 4) % 10
  batch = jnp.arange(batch_size)
  # The step donates its parameters, so time it on fresh copies each call.
  args = lambda: (graphdef, loss, optimizer, *jax.tree.map(
      jnp.copy, (params, ema_params, opt_state)), (images, labels), batch,
                  jax.random.key(2), np.float32(0.0))
  compiled = train.fit_step.lower(*args(), ema_decay=ema_decay).compile()
  step_flops = flops(compiled)
  seconds = median_seconds(lambda: compiled(*args()[3:]), repeats)
  return {'batch_size': batch_size, 'step_seconds': seconds,
          'images_per_second': batch_size / seconds, 'step_flops': step_flops,
          'flops_per_second': step_flops / seconds}


def classifier_training(config: ml_collections.ConfigDict,
                        repeats: int) -> tuple[dict[str, float], dict[str, Any] | None]:
  """The generating classifier's training step (AdamW, ±max_shift-pixel shifts,
  `config`'s batch), the kit's and the PyTorch port's (None without PyTorch)."""
  model = models.make_classifier(config.model, jax.random.key(0))
  kit = training_throughput(
      model, train.ClassifierLoss(max_shift=config.max_shift),
      optax.adamw(config.learning_rate, weight_decay=config.weight_decay),
      config.batch_size, repeats)
  peer = bench_peers.torch_classifier_training(
      model, config.batch_size, config.max_shift, config.learning_rate,
      config.weight_decay, repeats)
  return kit, peer


def unet_training(config: ml_collections.ConfigDict,
                  repeats: int) -> tuple[dict[str, float], dict[str, Any] | None]:
  """The flow model's training step as the `diffusion` experiment trains it (the
  flow-matching loss, AdamW on its schedule, EMA, `config`'s batch), the kit's and
  the PyTorch port's (None without PyTorch)."""
  model = models.make_unet(config.model, jax.random.key(0))
  total_steps = config.epochs * (60_000 // config.batch_size)
  kit = training_throughput(
      model, train.KINDS['flow'].loss(config), train.make_optimizer(config, total_steps),
      config.batch_size, repeats, ema_decay=config.ema_decay)
  peer = bench_peers.torch_unet_training(
      model, config.batch_size, config.label_dropout, config.learning_rate,
      config.weight_decay, config.ema_decay, repeats)
  return kit, peer


def grid_pairs(count: int) -> jax.Array:
  """(count, 2): the 100 (a, b) pairs of the 10×10 grid, repeated."""
  grid = jnp.asarray(exchange.all_pairs(np.arange(10), np.arange(10)))
  return jnp.tile(grid, (-(-count // 100), 1))[:count]


def ascent_inputs(count: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Starting images, (a, b) targets (the 100 pairs, repeated) and keys for `count`
  candidates."""
  init = jax.random.uniform(jax.random.key(3), (count, 28, 28))
  return init, grid_pairs(count), jax.random.split(jax.random.key(4), count)


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


class Sampler(NamedTuple):
  """The main job's sampler as `bench` times it: the `pairs` job's networks (random
  weights: speed does not depend on them) and settings, on `pairs` pairs × K
  candidates."""
  unet: models.UNet
  classifier: models.Classifier
  objective: objectives.FlipObjective
  noise: jax.Array  # (N, 28, 28)
  pairs: jax.Array  # (N, 2), each pair's K candidates consecutive, as `pairs` draws them
  key: jax.Array
  guidance: np.float32
  classifier_weight: np.float32
  steps: int


def make_sampler(config: ml_collections.ConfigDict, pairs: int) -> Sampler:
  """The `Sampler` that `config` (bench's `sampler` section) describes."""
  candidate_pairs = jnp.repeat(grid_pairs(pairs), config.candidates, axis=0)
  return Sampler(models.make_unet(config.unet, jax.random.key(5)),
                 models.make_classifier(config.classifier, jax.random.key(6)),
                 objectives.flip_objective(config.objective),
                 jax.random.normal(jax.random.key(7), (len(candidate_pairs), 28, 28)),
                 candidate_pairs, jax.random.key(8), np.float32(config.guidance),
                 np.float32(config.classifier_weight), config.steps)


def kit_sampler(sampler: Sampler, steps: int):
  """`flow.sample_flips` for `sampler`, compiled for `steps` steps, and its inputs:
  the arguments `flow.draw` passes for the `pairs` settings."""
  graphdef, params = nnx.split(sampler.unet)
  classifier, classifier_params = nnx.split(sampler.classifier)
  inputs = (params, sampler.noise, sampler.pairs, sampler.key, sampler.guidance,
            classifier_params, sampler.classifier_weight)
  compiled = flow.sample_flips.lower(graphdef, *inputs, steps=steps, classifier=classifier,
                                     objective=sampler.objective).compile()
  return compiled, inputs


def euler_step(graphdefs: tuple[nnx.GraphDef, nnx.GraphDef],
               params: tuple[nnx.State, nnx.State], objective: objectives.FlipObjective,
               signal: jax.Array, time: jax.Array, next_time: jax.Array, pairs: jax.Array,
               key: jax.Array, guidance: jax.Array, classifier_weight: jax.Array
               ) -> jax.Array:
  """One step of `flow.sample_flips` with the `pairs` settings (views' velocities
  averaged, classifier guidance, no resampling), for the (U-Net, classifier)
  `graphdefs` and `params`. Bench's copy, so that it can run the step under other
  loops than flow.py's scan (tests/test_bench.py checks it lands where the kit does)."""
  velocity = flow.flip_velocity(graphdefs[0], params[0], signal, time, pairs, guidance)
  gradient = flow.objective_gradient(graphdefs[1], params[1], objective,
                                     models.to_images(signal - time * velocity), pairs, key)
  velocity = velocity - classifier_weight * gradient / (flow.rms(gradient) + 1e-12)
  return signal + (next_time - time) * velocity


host_loop_euler_step = jax.jit(euler_step, static_argnums=(0, 2))


@functools.partial(jax.jit, static_argnames=('graphdefs', 'objective', 'steps', 'unroll'))
def unrolled_sample(graphdefs: tuple[nnx.GraphDef, nnx.GraphDef],
                    params: tuple[nnx.State, nnx.State], noise: jax.Array,
                    pairs: jax.Array, key: jax.Array, guidance: jax.Array,
                    classifier_weight: jax.Array, *, objective: objectives.FlipObjective,
                    steps: int, unroll: int) -> jax.Array:
  """`flow.sample_flips` with the `pairs` settings, its `lax.scan` unrolled `unroll`
  steps at a time: a lever flow.py does not offer, measured here."""
  times = jnp.linspace(1.0, 0.0, steps + 1)

  def step(signal, inputs):
    time, next_time, step_key = inputs
    return euler_step(graphdefs, params, objective, signal, time, next_time, pairs,
                      step_key, guidance, classifier_weight), None

  signal, _ = jax.lax.scan(step, noise, (times[:-1], times[1:],
                                         jax.random.split(key, steps)), unroll=unroll)
  return models.to_images(signal)


def host_loop_sample(sampler: Sampler) -> jax.Array:
  """The sampler as a Python loop over `host_loop_euler_step`, one compiled program
  per step called `steps` times (the images stay on the device)."""
  graphdefs, params = zip(nnx.split(sampler.unet), nnx.split(sampler.classifier))
  times = jnp.linspace(1.0, 0.0, sampler.steps + 1)
  keys = jax.random.split(sampler.key, sampler.steps)
  signal = sampler.noise
  for step in range(sampler.steps):
    signal = host_loop_euler_step(graphdefs, params, sampler.objective, signal,
                                  times[step], times[step + 1], sampler.pairs, keys[step],
                                  sampler.guidance, sampler.classifier_weight)
  return models.to_images(signal)


def sampler_parts(sampler: Sampler, repeats: int) -> dict[str, float]:
  """Where one step's time goes: the U-Net's 4N pass (`flow.flip_velocity`) and the
  classifier's gradient, each as its own compiled program, with XLA's FLOPs."""
  graphdef, params = nnx.split(sampler.unet)
  classifier, classifier_params = nnx.split(sampler.classifier)
  images = models.to_images(sampler.noise)
  unet_pass = jax.jit(flow.flip_velocity, static_argnums=0).lower(
      graphdef, params, sampler.noise, jnp.float32(0.5), sampler.pairs,
      sampler.guidance).compile()
  gradient = jax.jit(flow.objective_gradient, static_argnums=(0, 2)).lower(
      classifier, classifier_params, sampler.objective, images, sampler.pairs,
      sampler.key).compile()
  return {
      'unet_pass_seconds': median_seconds(lambda: unet_pass(
          params, sampler.noise, jnp.float32(0.5), sampler.pairs, sampler.guidance),
                                          repeats),
      'unet_pass_flops': flops(unet_pass),
      'classifier_gradient_seconds': median_seconds(lambda: gradient(
          classifier_params, images, sampler.pairs, sampler.key), repeats),
      'classifier_gradient_flops': flops(gradient)}


def sampler_throughput(sampler: Sampler, unrolls: list[int],
                       repeats: int) -> tuple[dict[str, Any], jax.Array]:
  """The kit's sampler (`flow.sample_flips`, one compiled `lax.scan`): image-steps/s,
  compile time, FLOP/s by XLA's count of one step compiled alone; its parts
  (`sampler_parts`); the same step as its own program called `steps` times from
  Python (what the scan body costs on this backend); the scan unrolled. Also its
  images, for the PyTorch port's check."""
  start = time.perf_counter()
  compiled, inputs = kit_sampler(sampler, sampler.steps)
  compile_seconds = time.perf_counter() - start
  step_flops = flops(kit_sampler(sampler, 1)[0])
  images = compiled(*inputs)
  seconds = median_seconds(lambda: compiled(*inputs), repeats)
  host_loop_seconds = median_seconds(lambda: host_loop_sample(sampler), repeats)
  graphdefs, params = zip(nnx.split(sampler.unet), nnx.split(sampler.classifier))
  unrolled = []
  for unroll in unrolls:
    start = time.perf_counter()
    program = unrolled_sample.lower(
        graphdefs, params, sampler.noise, sampler.pairs, sampler.key, sampler.guidance,
        sampler.classifier_weight, objective=sampler.objective, steps=sampler.steps,
        unroll=unroll).compile()
    unroll_compile = time.perf_counter() - start
    unroll_seconds = median_seconds(lambda: program(
        params, sampler.noise, sampler.pairs, sampler.key, sampler.guidance,
        sampler.classifier_weight), repeats)
    unrolled.append({'unroll': unroll, 'compile_seconds': unroll_compile,
                     'seconds': unroll_seconds, 'speedup': seconds / unroll_seconds})
  image_steps = sampler.noise.shape[0] * sampler.steps
  return {
      'images': sampler.noise.shape[0], 'steps': sampler.steps,
      'guidance': float(sampler.guidance),
      'classifier_weight': float(sampler.classifier_weight),
      'objective': sampler.objective._asdict(), 'compile_seconds': compile_seconds,
      'seconds': seconds, 'image_steps_per_second': image_steps / seconds,
      'step_flops': step_flops, 'flops_per_second': step_flops * sampler.steps / seconds,
      **sampler_parts(sampler, repeats),
      'host_loop_seconds': host_loop_seconds,
      'loop_body_penalty': seconds / host_loop_seconds, 'unrolled': unrolled}, images


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


def _peer_line(peer: dict[str, Any] | None, what: str) -> str:
  if peer is None:
    return f'  PyTorch: not importable (pip install torch==2.13.0 to add the {what} port)'
  return (f"  {peer['framework']} port ({peer['threads']} threads), same {what}: "
          f"the kit is {peer['kit_speedup']:.2f}× as fast")


def table(result: dict[str, Any]) -> str:
  peak = result['matmul']['flops_per_second']
  a, s = result['ascent'], result['sampler']
  g = lambda x: f'{x / 1e9:.1f} GFLOP/s ({100 * x / peak:.0f}% of matmul)'
  peers = {peer['task']: peer for peer in result['peers']}
  lines = [
      f"device: {result['environment']['device']} × {result['environment']['device_count']}"
      f", jax {result['environment']['jax']}",
      f"matmul {result['matmul']['size']}² float32: {peak / 1e9:.1f} GFLOP/s"]
  for task, key in (('classifier training', 'training'), ('U-Net training', 'unet_training')):
    t, peer = result[key], peers.get(task)
    lines.append(f"{task} step (batch {t['batch_size']}): {t['images_per_second']:.0f} "
                 f"images/s, " + g(t['flops_per_second'])
                 + (f"; PyTorch {peer['images_per_second']:.0f} images/s" if peer else ''))
    lines.append(_peer_line(peer, f'{task} step'))
  step = s['seconds'] / s['steps']
  rest = step - s['unet_pass_seconds'] - s['classifier_gradient_seconds']
  peer = peers.get('sampler')
  lines += [
      f"sampler (pairs' flow.sample_flips), {s['images']} images × {s['steps']} steps, "
      f"guidance {s['guidance']:g}, classifier weight {s['classifier_weight']:g}: "
      f"{s['image_steps_per_second']:.1f} image-steps/s, " + g(s['flops_per_second'])
      + f"; compile {s['compile_seconds']:.1f} s vs run {s['seconds']:.1f} s",
      f"  a step ({step:.2f} s): U-Net pass over 4N = {4 * s['images']} "
      f"{s['unet_pass_seconds']:.2f} s at "
      + g(s['unet_pass_flops'] / s['unet_pass_seconds'])
      + f", classifier gradient {s['classifier_gradient_seconds']:.2f} s at "
      + g(s['classifier_gradient_flops'] / s['classifier_gradient_seconds'])
      + f", the rest {rest:.2f} s",
      f"  the same step called from a Python loop: {s['host_loop_seconds']:.2f} s "
      f"(inside the scan it takes {s['loop_body_penalty']:.2f}× as long)"]
  lines += [f"  the scan unrolled ×{u['unroll']}: {u['seconds']:.2f} s, "
            f"{u['speedup']:.2f}× the kit's speed (compile {u['compile_seconds']:.1f} s)"
            for u in s['unrolled']]
  if peer:
    lines.append(f"  {peer['framework']}: {peer['seconds']:.2f} s "
                 f"({100 * peer['images_within_1e-4']:.1f}% of the images within 1e-4 of "
                 f"the kit's; largest difference {peer['max_image_difference']:.0e})")
  lines += [
      _peer_line(peer, 'sampler'),
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
      f"(inside the scan it takes {a['loop_body_penalty']:.2f}× as long)"]
  peer = peers.get('ascent')
  if peer:
    lines.append(f"  {peer['framework']}: {peer['seconds']:.2f} s (port's max logit "
                 f"difference {peer['max_logit_difference']:.1e})")
  lines += [
      _peer_line(peer, 'ascent'),
      'K candidates per pair (100·K images): ' + ', '.join(
          f"K={r['candidates']} {r['seconds']:.2f} s ({r['image_steps_per_second']:.0f}"
          f" img-steps/s, {r['peak_bytes'] / 2**20:.0f} MiB)" for r in result['scaling'])]
  if 'first_grid' in result:
    f = result['first_grid']
    lines.append(f"process start → first grid ({f['command']}): compilation cache cold "
                 f"{f['cold_cache_seconds']:.1f} s, warm {f['warm_cache_seconds']:.1f} s")
  return '\n'.join(lines)


def with_peer(peers: list[dict[str, Any]], peer: dict[str, Any] | None,
              kit_seconds: float) -> None:
  """Appends `peer` (None: PyTorch not importable) to `peers`, with the ratio of its
  time to the kit's: how many times as fast the kit is."""
  if peer:
    peer['kit_speedup'] = peer['seconds'] / kit_seconds
    peers.append(peer)


def run_experiment(config: ml_collections.ConfigDict, workspace: io.Workspace,
                   name: str) -> None:
  graphdef, params = nnx.split(models.make_classifier(config.classifier.model,
                                                      jax.random.key(0)))
  result = {'environment': environment(), 'peers': []}
  logging.info('Timing a %d² matmul.', config.matmul_size)
  result['matmul'] = matmul_peak(config.matmul_size, config.repeats)
  logging.info('Timing the classifier and U-Net training steps, kit and PyTorch.')
  for key, timed, model_config in (('training', classifier_training, config.classifier),
                                   ('unet_training', unet_training, config.flow)):
    result[key], peer = timed(model_config, config.repeats)
    with_peer(result['peers'], peer, result[key]['step_seconds'])
  logging.info('Timing the sampler of pairs: %d pairs × K = %d, %d steps.', config.pairs,
               config.sampler.candidates, config.sampler.steps)
  sampler = make_sampler(config.sampler, config.pairs)
  result['sampler'], images = sampler_throughput(sampler, list(config.sampler.unroll),
                                                 config.sampler.repeats)
  logging.info('Timing the PyTorch port of the sampler, if PyTorch imports.')
  with_peer(result['peers'], bench_peers.torch_sampler(
      sampler.unet, sampler.classifier, sampler.objective, sampler.noise, sampler.pairs,
      sampler.key, sampler.guidance, sampler.classifier_weight, sampler.steps,
      config.sampler.repeats, images), result['sampler']['seconds'])
  logging.info('Timing ascent: batched, per pair, eager.')
  result['ascent'] = ascent_throughput(graphdef, params, config.pairs, config.steps,
                                       config.eager_steps, config.repeats)
  logging.info('Timing the PyTorch port of the batched ascent, if PyTorch imports.')
  init, targets, _ = ascent_inputs(config.pairs)
  with_peer(result['peers'], bench_peers.torch_ascent(
      graphdef, params, np.asarray(init), np.asarray(targets), config.steps, 0.01,
      config.repeats), result['ascent']['batched_seconds'])
  for key in ('training', 'unet_training', 'sampler', 'ascent'):
    result[key]['fraction_of_peak'] = (result[key]['flops_per_second']
                                       / result['matmul']['flops_per_second'])
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
