"""The pairs job: one image per (a, b) that reads a upright and b turned 180°.

Writes, into `<workdir>/<experiment>/`: `pairs.npz` (the exchange format: `images`
float32 (N, 28, 28) in [0, 1], `pairs` int (N, 2), a-major), `grid.png`,
`grid_rotated.png` and `scores.json` (the generating classifier's view).
"""

from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from flipnum_jax import ascent
from flipnum_jax import data
from flipnum_jax import diffusion
from flipnum_jax import io
from flipnum_jax import objectives
from flipnum_jax import plots
from flipnum_jax import prior
from flipnum_jax import sharding
from flipnum_jax import timing
from flipnum_jax import train
from flipnum_jax.errors import ConfigError


def check_digits(name: str, digits: Sequence[int]) -> np.ndarray:
  """`digits` as an int array, or a ConfigError if any is not one of 0–9."""
  values = list(digits) if isinstance(digits, (tuple, list)) else [digits]
  if not values or len(set(values)) != len(values) or any(
      not isinstance(d, int) or isinstance(d, bool) or not 0 <= d <= 9 for d in values):
    raise ConfigError(f'{name} must be distinct digits 0–9, not {digits!r}')
  return np.array(values, np.int32)


def all_pairs(upright: np.ndarray, rotated: np.ndarray) -> np.ndarray:
  """(len(upright) * len(rotated), 2) pairs in a-major order."""
  return np.stack(np.meshgrid(upright, rotated, indexing='ij'), -1).reshape(-1, 2)


def _mean_image(pairs: np.ndarray, mnist: data.Mnist, key: jax.Array) -> jax.Array:
  del key  # deterministic
  mean = data.to_float(mnist.train_images).mean(0)
  return jnp.broadcast_to(jnp.asarray(mean), (len(pairs), 28, 28))


def _uniform_noise(pairs: np.ndarray, mnist: data.Mnist, key: jax.Array) -> jax.Array:
  del mnist  # data-free
  return jax.random.uniform(key, (len(pairs), 28, 28))


def _class_blend(pairs: np.ndarray, mnist: data.Mnist, key: jax.Array) -> jax.Array:
  """Half the mean of class a plus half the turned mean of class b, lightly noised."""
  images = data.to_float(mnist.train_images)
  means = np.stack([images[mnist.train_labels == d].mean(0) for d in range(10)])
  blend = 0.5 * (means[pairs[:, 0]] + means[pairs[:, 1]][:, ::-1, ::-1])
  return jnp.clip(blend + 0.1 * jax.random.normal(key, blend.shape), 0.0, 1.0)


def _example_blend(pairs: np.ndarray, mnist: data.Mnist, key: jax.Array) -> jax.Array:
  """A random real a overlaid on a random real b turned 180° (max of the two inks)."""
  images = data.to_float(mnist.train_images)
  by_class = [np.flatnonzero(mnist.train_labels == d) for d in range(10)]
  rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel())
  upright = images[[rng.choice(by_class[a]) for a in pairs[:, 0]]]
  turned = images[[rng.choice(by_class[b]) for b in pairs[:, 1]]][:, ::-1, ::-1]
  return jnp.asarray(np.maximum(upright, turned))


# Starting images for ascent: init name → function(pairs, mnist, key).
INITS = {'mean': _mean_image, 'noise': _uniform_noise, 'class_blend': _class_blend,
         'example_blend': _example_blend}


def init_function(kind: str):
  """The starting-image function called `kind`, or a ConfigError."""
  if kind not in INITS:
    raise ConfigError(f'init must be one of {sorted(INITS)}, not {kind!r}')
  return INITS[kind]


def flip_objective(config: ml_collections.ConfigDict) -> objectives.FlipObjective:
  """The objective an `objective` config describes (all zeros: the blog's)."""
  settings = config.to_dict()
  if settings['samples'] < 1:
    raise ConfigError(f'objective.samples must be ≥ 1, not {settings["samples"]}')
  if any(v < 0 for v in settings.values() if not isinstance(v, bool)):
    raise ConfigError('objective weights and ranges must be ≥ 0')
  return objectives.FlipObjective(**settings)


def real_examples(mnist: data.Mnist, digits: np.ndarray) -> np.ndarray:
  """The first test image of each digit, as floats: the grids' guides."""
  firsts = [int(np.argmax(mnist.test_labels == d)) for d in digits]
  return data.to_float(mnist.test_images[firsts])


@jax.jit
def _view_probs(graphdef: nnx.GraphDef, params: nnx.State,
                images: jax.Array) -> jax.Array:
  return jnp.exp(jax.vmap(objectives.view_log_probs, in_axes=(None, None, 0))(
      graphdef, params, images))


def pair_probabilities(graphdef: nnx.GraphDef, params: nnx.State, images: jax.Array,
                       pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """p(a | x) and p(b | rot180 x) for each image and its pair (a, b), and (2, N)
  whether a (row 0) and b (row 1) are the classifier's top class in their view —
  the criterion the judges read by."""
  probs = np.asarray(_view_probs(graphdef, params, images))
  index = np.arange(len(pairs))
  return (probs[index, 0, pairs[:, 0]], probs[index, 1, pairs[:, 1]],
          probs.argmax(-1).T == pairs.T)


def scores_summary(pairs: np.ndarray, p_upright: np.ndarray, p_rotated: np.ndarray,
                   reads: np.ndarray) -> dict[str, Any]:
  minimum = np.minimum(p_upright, p_rotated)
  worst = int(np.argmin(minimum))
  return {
      'pairs': [{'upright': int(a), 'rotated': int(b), 'p_upright': float(pu),
                 'p_rotated': float(pr), 'min': float(m), 'reads_upright': bool(ru),
                 'reads_rotated': bool(rr)}
                for (a, b), pu, pr, m, ru, rr in zip(pairs, p_upright, p_rotated, minimum,
                                                     reads[0], reads[1])],
      'mean_min_confidence': float(minimum.mean()),
      'worst_pair': [int(pairs[worst, 0]), int(pairs[worst, 1])],
  }


def write_outputs(out_dir, title: str, images: np.ndarray, pairs: np.ndarray,
                  upright: np.ndarray, rotated: np.ndarray, summary: dict[str, Any],
                  mnist: data.Mnist) -> None:
  """Writes pairs.npz, grid.png, grid_rotated.png and scores.json."""
  io.write_npz(out_dir / 'pairs.npz', images=images.astype(np.float32),
               pairs=pairs.astype(np.int64))
  minimum = np.array([p['min'] for p in summary['pairs']])
  guides = dict(upright_guides=real_examples(mnist, upright),
                rotated_guides=real_examples(mnist, rotated))
  title = f'{title} — mean min confidence {summary["mean_min_confidence"]:.3f}'
  plots.pair_grid(out_dir / 'grid.png', images, upright, rotated, minimum,
                  title=title, **guides)
  plots.pair_grid(out_dir / 'grid_rotated.png', images, upright, rotated, minimum,
                  title=title, turned=True, **guides)
  io.write_json(out_dir / 'scores.json', summary)


def select_best(scores: np.ndarray, candidates: int) -> np.ndarray:
  """For scores (P·K,) of K candidates per pair, the index of each pair's best."""
  per_pair = scores.reshape(-1, candidates)
  return np.arange(per_pair.shape[0]) * candidates + per_pair.argmax(1)


class Generated(NamedTuple):
  """The chosen image per pair, the generator's probabilities of both readings,
  whether each reading is its top class ((2, N)), and the generation's timing."""
  images: np.ndarray
  p_upright: np.ndarray
  p_rotated: np.ndarray
  reads: np.ndarray
  timing: dict[str, float]


METHODS = ('ascent', 'diffusion')


def check_method(config: ml_collections.ConfigDict) -> None:
  """Refuses a bad pair-method config before anything is trained or written."""
  if config.method not in METHODS:
    raise ConfigError(f'method must be one of {METHODS}, not {config.method!r}')
  flip_objective(config.objective)
  if config.method == 'ascent':
    ascent.make_optimizer(config.ascent)
    init_function(config.init)
  else:
    diffusion.check_sampler(config.sampler)
  if config.candidates < 1:
    raise ConfigError(f'candidates must be ≥ 1, not {config.candidates}')


def ascend_candidates(config: ml_collections.ConfigDict, candidate_pairs: np.ndarray,
                      graphdef: nnx.GraphDef, params: nnx.State, mnist: data.Mnist,
                      workdir: str, data_dir: str | None
                      ) -> tuple[np.ndarray, timing.Seconds]:
  """One image per row of `candidate_pairs` by ascent on the generating classifier
  (in pixels, or in a VAE's latent space when config.prior.name is set)."""
  init_key, ascent_key = jax.random.split(jax.random.key(config.seed))
  start = init_function(config.init)(candidate_pairs, mnist, init_key)
  latent = {}
  if config.prior.name:  # ascend in the VAE's latent space, from the start's encoding
    vae = prior.get_vae(config.prior, workdir, data_dir)
    start = vae.encode(start)[0]
    decoder_graphdef, decoder_params = nnx.split(vae)
    latent = dict(decoder=decoder_graphdef, prior_weight=config.prior.prior_weight)
  start, targets, keys = sharding.shard_batch(
      jnp.asarray(start), jnp.asarray(candidate_pairs),
      jax.random.split(ascent_key, len(candidate_pairs)))
  result = ascent.timed_ascend(
      graphdef, params, start, targets, keys, decoder_params if latent else None,
      objective=flip_objective(config.objective),
      optimizer=ascent.make_optimizer(config.ascent), steps=config.ascent.steps,
      **latent)
  return np.asarray(result.images), result.seconds


def generate(config: ml_collections.ConfigDict, pairs: np.ndarray, workdir: str,
             data_dir: str | None) -> tuple[Generated, data.Mnist]:
  """K candidates per pair, all in one compiled batch, by `config.method`: ascent on
  the generating classifier, or view-averaged diffusion sampling (optionally guided
  by that classifier). Each pair keeps the candidate the generating classifier reads
  best (min(p_a, p_b)), or for diffusion with select 'denoising' the one
  `diffusion.candidate_scores` ranks first: generator-side scores only, never a
  judge's. A bad method config is refused before anything is trained
  or written."""
  check_method(config)
  candidate_pairs = np.repeat(pairs, config.candidates, axis=0)
  classifier, _ = train.get_classifier(config.classifier, workdir, data_dir)
  graphdef, params = nnx.split(classifier)
  mnist = data.load_mnist(data_dir)
  if config.method == 'ascent':
    images, seconds = ascend_candidates(config, candidate_pairs, graphdef, params, mnist,
                                        workdir, data_dir)
    steps = config.ascent.steps
  else:
    images, errors, seconds = diffusion.draw_flips(
        config, candidate_pairs, graphdef, params, flip_objective(config.objective),
        workdir, data_dir)
    steps = config.sampler.steps
  p_upright, p_rotated, reads = pair_probabilities(graphdef, params, jnp.asarray(images),
                                                   candidate_pairs)
  scores = np.minimum(p_upright, p_rotated)
  if config.method == 'diffusion':
    scores = diffusion.candidate_scores(scores, errors, config.sampler.select)
  best = select_best(scores, config.candidates)
  timing_summary = {'compile_seconds': seconds.compile, 'run_seconds': seconds.run,
                    'image_steps_per_second': len(candidate_pairs) * steps / seconds.run}
  return Generated(images[best], p_upright[best], p_rotated[best], reads[:, best],
                   timing_summary), mnist


def run_experiment(config: ml_collections.ConfigDict, workdir: str,
                   data_dir: str | None, name: str) -> None:
  """The pairs job: one image per (a, b) for every upright and rotated digit."""
  upright = check_digits('upright_digits', config.upright_digits)
  rotated = check_digits('rotated_digits', config.rotated_digits)
  pairs = all_pairs(upright, rotated)
  generated, mnist = generate(config, pairs, workdir, data_dir)
  summary = scores_summary(pairs, generated.p_upright, generated.p_rotated, generated.reads)
  summary['timing'] = generated.timing
  out_dir = io.experiment_dir(workdir, name)
  write_outputs(out_dir, name, generated.images, pairs, upright, rotated, summary, mnist)
  logging.info('Wrote %s: mean min confidence %.3f, worst pair %s.', out_dir,
               summary['mean_min_confidence'], summary['worst_pair'])
  print(f'{name}: {len(pairs)} pairs × {config.candidates} candidates, generator mean '
        f'min confidence {summary["mean_min_confidence"]:.3f} (worst '
        f'{summary["worst_pair"]}); outputs in {out_dir}')
