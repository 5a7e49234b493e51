"""The strokes generator: flip digits drawn as a few pen strokes, not as pixels.

Every candidate is `strokes` cubic Bézier curves of one pen width each, rendered
differentiably (`render`: each pixel's ink is a sigmoid of its distance to the
nearest curve), so the image can only ever be smooth strokes of even ink — no
speckle, no grey second strokes, no blobs. Adam moves the control points and
widths to maximize the flip objective of the generating classifier (and of a
readability model, with `guide_reader`) minus `prior_weight` times a score
distillation loss of the flow-matching model for both views (Poole et al. 2022;
Burgert et al. 2023 use it for flip illusions): at a random noise level the image
is noised, the model denoises it as a upright and, turned, as b, and the strokes
move towards both clean estimates, so that each view drifts towards handwriting
the model knows rather than towards what only the classifier reads.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from flax import nnx

from flipnum_jax import io
from flipnum_jax import models
from flipnum_jax import objectives
from flipnum_jax import sharding
from flipnum_jax import timing
from flipnum_jax import train
from flipnum_jax.errors import ConfigError
from flipnum_jax.generators import base
from flipnum_jax.generators import flow

# Pixel centres (784, 2) as (row, column), the frame control points live in.
_PIXELS = jnp.stack(jnp.meshgrid(jnp.arange(28.0), jnp.arange(28.0), indexing='ij'),
                    -1).reshape(-1, 2)


def default_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({
      'name': 'strokes', 'model': train.flow_config(),
      'strokes': 4, 'samples_per_stroke': 12,  # points on each curve it is drawn through
      'width': 1.4, 'softness': 0.4,  # initial pen half-width and edge blur, pixels
      'steps': 200, 'learning_rate': 0.2,  # Adam on control points (pixels)
      'prior_weight': 0.3,  # weight of the flow model's score distillation (0 = none)
      'prior_times': (0.2, 0.8),  # its noise levels are drawn uniformly in here
      'guidance': 3.0})  # classifier-free guidance of the distilled flow model


def check(config: ml_collections.ConfigDict) -> None:
  if config.strokes < 1 or config.samples_per_stroke < 2 or config.steps < 1:
    raise ConfigError('generator.strokes and steps must be ≥ 1 and samples_per_stroke '
                      f'≥ 2, not {config.strokes}, {config.steps} and '
                      f'{config.samples_per_stroke}')
  for name in ('width', 'softness', 'learning_rate'):
    if not (np.isfinite(config[name]) and config[name] > 0):
      raise ConfigError(f'generator.{name} must be finite and > 0, not {config[name]}')
  if not (np.isfinite(config.prior_weight) and config.prior_weight >= 0):
    raise ConfigError(f'generator.prior_weight must be ≥ 0, not {config.prior_weight}')
  if not (np.isfinite(config.guidance) and config.guidance >= 0):
    raise ConfigError(f'generator.guidance must be ≥ 0, not {config.guidance}')
  low, high = config.prior_times
  if not 0.0 < low < high < 1.0:
    raise ConfigError(f'generator.prior_times must be (lo, hi) with 0 < lo < hi < 1, '
                      f'not {tuple(config.prior_times)}')


def bezier_points(controls: jax.Array, samples: int) -> jax.Array:
  """(S, samples, 2): points along each cubic Bézier curve of `controls` (S, 4, 2)."""
  t = jnp.linspace(0.0, 1.0, samples)[:, None]
  basis = jnp.stack([(1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t ** 2, t ** 3])
  return jnp.einsum('kti,skd->std', basis, controls)


def render(controls: jax.Array, half_widths: jax.Array, softness: float,
           samples: int) -> jax.Array:
  """The image (28, 28) in [0, 1] of strokes `controls` (S, 4, 2), each drawn through
  `samples` points with pen half-width `half_widths` (S,) pixels: a pixel's ink
  from one stroke is sigmoid((half-width − distance to the stroke) / softness), and
  strokes overlay as 1 − Π(1 − ink)."""
  points = bezier_points(controls, samples)
  start, end = points[:, :-1], points[:, 1:]  # (S, samples − 1, 2) segments
  along = end - start
  offset = _PIXELS[:, None, None, :] - start  # (784, S, segments, 2)
  fraction = jnp.clip(jnp.sum(offset * along, -1) / (jnp.sum(along ** 2, -1) + 1e-6),
                      0.0, 1.0)
  gap = offset - fraction[..., None] * along
  distance = jnp.sqrt(jnp.sum(gap ** 2, -1) + 1e-4).min(-1)  # (784, S)
  ink = jax.nn.sigmoid((half_widths - distance) / softness)
  return (1.0 - jnp.prod(1.0 - ink, -1)).reshape(28, 28)


def random_strokes(key: jax.Array, count: int, strokes: int) -> jax.Array:
  """(count, strokes, 4, 2) control points: each stroke a random cubic through the
  digit box (rows and columns 6–22, where MNIST digits lie)."""
  return jax.random.uniform(key, (count, strokes, 4, 2), minval=6.0, maxval=22.0)


def distillation_loss(graphdef: nnx.GraphDef, params: nnx.State, image: jax.Array,
                      pair: jax.Array, time: jax.Array, noise: jax.Array,
                      guidance: float) -> jax.Array:
  """½‖x − x̂‖² summed over both views, x̂ held fixed: x̂ is the flow model's clean
  estimate of x noised to `time` with `noise`, as a upright and (turned) as b. Its
  gradient is score distillation's: towards what the model denoises each view to."""
  signal = models.to_signal(image)[None]
  noisy = (1.0 - time) * signal + time * noise[None]
  upright, turned = flow.view_velocities(graphdef, params, noisy, time, pair[None],
                                         guidance)
  estimates = jax.lax.stop_gradient(
      jnp.concatenate([noisy - time * upright, noisy - time * turned]))
  return 0.5 * jnp.sum((signal - estimates) ** 2)


@functools.partial(jax.jit, static_argnames=(
    'graphdef', 'flow_graphdef', 'objective', 'steps', 'learning_rate', 'softness',
    'samples', 'prior_weight', 'guidance', 'prior_times'))
def draw_strokes(graphdef: nnx.GraphDef, params: nnx.State, flow_params: nnx.State,
                 controls: jax.Array, half_widths: jax.Array, pairs: jax.Array,
                 keys: jax.Array, *, flow_graphdef: nnx.GraphDef,
                 objective: objectives.FlipObjective,
                 steps: int, learning_rate: float, softness: float, samples: int,
                 prior_weight: float, guidance: float,
                 prior_times: tuple[float, float]) -> tuple[jax.Array, jax.Array]:
  """Adam on every candidate's strokes (controls (N, S, 4, 2), half-widths (N, S))
  for the flip objective of the guide (graphdef, params) on pairs (N, 2) minus
  `prior_weight` × `distillation_loss`; `keys` (N,) give each candidate its own
  jitter, noise levels and noises. Returns images (N, 28, 28) and the flip
  objective before each step (steps, N)."""
  optimizer = optax.adam(learning_rate)

  def loss(strokes, pair, key):
    """The step's loss for one candidate (minus its objective, plus the prior)."""
    objective_key, time_key, noise_key = jax.random.split(key, 3)
    image = render(*strokes, softness, samples)
    score = objective(graphdef, params, image, pair, objective_key)
    prior = 0.0
    if prior_weight:
      time = jax.random.uniform(time_key, (), minval=prior_times[0],
                                maxval=prior_times[1])
      prior = distillation_loss(flow_graphdef, flow_params, image, pair, time,
                                jax.random.normal(noise_key, (28, 28)), guidance)
    return prior_weight * prior - score, score

  def update_one(strokes, opt_state, pair, key):
    (_, score), grads = jax.value_and_grad(loss, has_aux=True)(strokes, pair, key)
    updates, opt_state = optimizer.update(grads, opt_state, strokes)
    controls, widths = optax.apply_updates(strokes, updates)
    # Pens stay between a hairline and a marker, strokes inside the frame.
    return (jnp.clip(controls, 2.0, 25.0), jnp.clip(widths, 0.7, 2.5)), opt_state, score

  def step(carry, inputs):
    index, step_keys = inputs
    strokes, opt_state = carry
    timing.log_progress('stroke drawing', index, steps, strokes[0])
    strokes, opt_state, scores = jax.vmap(update_one)(strokes, opt_state, pairs,
                                                      step_keys)
    return (strokes, opt_state), scores

  strokes = (controls, half_widths)
  # One key per candidate and step: each candidate's keys split from its own key.
  step_keys = jax.vmap(lambda key: jax.random.split(key, steps))(keys).swapaxes(0, 1)
  (strokes, _), scores = jax.lax.scan(
      step, (strokes, jax.vmap(optimizer.init)(strokes)),
      (jnp.arange(steps), step_keys))
  timing.log_progress('stroke drawing', jnp.asarray(steps), steps, strokes[0])
  return jax.vmap(lambda c, w: render(c, w, softness, samples))(*strokes), scores


def draw(config: ml_collections.ConfigDict, candidate_pairs: np.ndarray,
         guide: base.Guide, workspace: io.Workspace, key: jax.Array) -> base.Drawn:
  """One stroke drawing per candidate pair, all in one compiled program split over
  all devices; the flow model's typicality of each view, for the choice."""
  flow_graphdef, flow_params = flow.get_model(config.model, workspace)
  start_key, draw_key, typicality_key = jax.random.split(key, 3)
  controls = random_strokes(start_key, len(candidate_pairs), config.strokes)
  half_widths = jnp.full(controls.shape[:2], config.width)
  controls, half_widths, pairs, keys = sharding.shard_batch(
      controls, half_widths, jnp.asarray(candidate_pairs),
      jax.random.split(draw_key, len(candidate_pairs)))
  (images, scores), seconds = timing.compile_and_run(
      draw_strokes, guide.graphdef, guide.params, flow_params, controls, half_widths,
      pairs, keys, flow_graphdef=flow_graphdef, objective=guide.objective,
      steps=config.steps, learning_rate=config.learning_rate,
      softness=config.softness, samples=config.samples_per_stroke,
      prior_weight=config.prior_weight, guidance=config.guidance,
      prior_times=tuple(config.prior_times))
  logging.info('Drew %d stroke candidates: compile %.1f s, %d steps in %.1f s; flip '
               'objective %.2f → %.2f.', len(candidate_pairs), seconds.compile,
               config.steps, seconds.run, float(scores[0].mean()),
               float(scores[-1].mean()))
  typicality = sharding.to_host(flow.flip_denoising_error(
      flow_graphdef, flow_params, images, pairs, typicality_key))
  return base.Drawn(sharding.to_host(images), typicality, seconds, config.steps)
