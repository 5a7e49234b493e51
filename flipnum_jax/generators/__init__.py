"""Generators: ways to draw flip-digit candidates, all behind one small protocol.

A generator is a module registered by name in `REGISTRY` with
  default_config() -> ConfigDict: every key of the `generator` subtree of a pairs
      config, `name` included (experiments start from it and change values);
  check(config) -> None: refuses a bad `generator` subtree with a ConfigError
      before anything is trained or drawn;
  draw(config, candidate_pairs, guide, workspace, key) -> base.Drawn: one image
      per row (a, b) of `candidate_pairs`, all in one compiled program, from the
      typed `key` (derive every use from it), `guide` being the generating
      classifier and the flip objective.
`generate` draws K candidates per pair with the generator the config names, reads
them with the generating classifier, and keeps one per pair (`choose`), or, with
`readability` naming a readability model (`flipnum_jax.readability`), the one whose
weaker view that model most expects a blind reader to name (times the
classifier's weaker reading with `readability_with_classifier`; with
`readability_guides`, that model also guides in place of the generating classifier);
`guide_reader` instead multiplies the classifier's probabilities in the guide by a
readability model's, or by several models' (`guide_model`), the choice staying the
classifier's. Only
generator-side models ever guide or choose; generators never import the judges.

Adding a generator: a module here with those three functions, and a line in
`REGISTRY` (the README walks through `ascent` as the example).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import scipy.ndimage
from flax import nnx

from flipnum_jax import io
from flipnum_jax import models
from flipnum_jax import objectives
from flipnum_jax import readability
from flipnum_jax import sharding
from flipnum_jax import train
from flipnum_jax.errors import ConfigError
from flipnum_jax.generators import ascent
from flipnum_jax.generators import base
from flipnum_jax.generators import flow
from flipnum_jax.generators import prior
from flipnum_jax.generators import retrieval
from flipnum_jax.generators import strokes

REGISTRY = {'ascent': ascent, 'flow': flow, 'prior': prior, 'retrieval': retrieval,
            'strokes': strokes}


def check(config: ml_collections.ConfigDict):
  """The generator module a pairs config names, after checking all of its
  settings (generator, objective, candidates); a ConfigError if any is bad."""
  name = config.generator.name
  if name not in REGISTRY:
    raise ConfigError(f'generator.name must be one of {sorted(REGISTRY)}, not {name!r}')
  module = REGISTRY[name]
  declared = set(module.default_config().keys())
  if set(config.generator.keys()) != declared:
    raise ConfigError(f'the {name} generator takes the settings {sorted(declared)}, '
                      f'not {sorted(config.generator)}')
  module.check(config.generator)
  objectives.flip_objective(config.objective)
  if config.candidates < 1:
    raise ConfigError(f'candidates must be ≥ 1, not {config.candidates}')
  readability.refuse_judge('readability', config.readability)
  if config.readability_guides and not config.readability:
    raise ConfigError('readability_guides needs a readability model (readability=NAME)')
  if config.readability_with_classifier and not config.readability:
    raise ConfigError('readability_with_classifier needs a readability model '
                      '(readability=NAME)')
  for reader in guide_readers(config):
    readability.refuse_judge('guide_reader', reader)
  if config.guide_reader and config.readability_guides:
    raise ConfigError('guide_reader joins the classifier in the guide, '
                      'readability_guides replaces it: choose one')
  if config.hard_pairs < 0:
    raise ConfigError(f'hard_pairs must be ≥ 0, not {config.hard_pairs}')
  if config.hard_pairs and config.hard_pair_candidates < 1:
    raise ConfigError('hard_pairs needs hard_pair_candidates ≥ 1, not '
                      f'{config.hard_pair_candidates}')
  if not (np.isfinite(config.guide_reader_weight) and config.guide_reader_weight > 0):
    raise ConfigError(f'guide_reader_weight must be finite and > 0, not '
                      f'{config.guide_reader_weight}')
  return module


def guide_readers(config: ml_collections.ConfigDict) -> list[str]:
  """The readability models `guide_reader` names (comma-separated; none for '')."""
  return [name for name in config.guide_reader.split(',') if name]


def guide_model(classifier: nnx.Module, config: ml_collections.ConfigDict,
                workspace: io.Workspace) -> tuple[nnx.GraphDef, nnx.State]:
  """What pushes the images: the generating classifier, or with `guide_reader`
  its product with those readability models, p_classifier · Π p_reader^w
  (`models.ProductOfExperts`, one reader at a time): a view must fool every reader
  at once to gain from a glyph that one of them misreads."""
  guide = classifier
  for name in guide_readers(config):
    reader = nnx.merge(*readability.load(name, workspace))
    guide = models.ProductOfExperts(guide, reader, config.guide_reader_weight)
  return nnx.split(guide)


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
  probs = sharding.to_host(_view_probs(graphdef, params, images))
  index = np.arange(len(pairs))
  return (probs[index, 0, pairs[:, 0]], probs[index, 1, pairs[:, 1]],
          probs.argmax(-1).T == pairs.T)


def choice_scores(min_probability: np.ndarray,
                  typicality: np.ndarray | None) -> np.ndarray:
  """(N,): what `choose` ranks each candidate by: the generating classifier's
  weaker reading, min(p_a, p_b); or, with a typicality error, for candidates that
  classifier reads both ways (min p > ½) 2 − worst/(1 + worst) of their worse view's
  error (always above ½, higher for more typical), the others keeping min p."""
  if typicality is None:
    return min_probability
  worst = typicality.max(1)
  return np.where(min_probability > 0.5, 2.0 - worst / (1.0 + worst), min_probability)


def best_in_groups(scores: np.ndarray, group: np.ndarray, groups: int) -> np.ndarray:
  """The index of the highest score of each group 0 … `groups` − 1 (`group` (N,)
  gives each candidate's; every group has one), the first on ties."""
  order = np.lexsort((-scores, group))
  return order[np.searchsorted(group[order], np.arange(groups))]


def choose(min_probability: np.ndarray, typicality: np.ndarray | None,
           candidates: int) -> np.ndarray:
  """The index of each pair's kept candidate, for K = `candidates` consecutive
  candidates per pair: the one the generating classifier reads best (highest
  min(p_a, p_b)); or, when the generator reports a typicality error, among the
  candidates that classifier reads both ways (min p > ½) the one whose worse view
  is most typical (lowest max error), candidates it does not read ranking below
  (`choice_scores`)."""
  group = np.arange(len(min_probability)) // candidates
  return best_in_groups(choice_scores(min_probability, typicality), group,
                        len(min_probability) // candidates)


def candidate_spread(candidates: np.ndarray, per_pair: int) -> np.ndarray:
  """(P,): for each pair, the mean RMS distance between two of its `per_pair`
  consecutive candidates (0 for one candidate), both blurred by a Gaussian of 1.5
  pixels so that a stroke moved by a pixel is still the same glyph: how much there
  is to choose from. Real test digits of one class (16 of each) lie 0.154 apart on
  average; `pairs`' eight candidates of a pair, 0.092; the same drawn without the
  classifier's push, 0.124."""
  blurred = scipy.ndimage.gaussian_filter(candidates.astype(np.float64), (0, 1.5, 1.5))
  grouped = blurred.reshape(-1, per_pair, candidates[0].size)
  if per_pair < 2:
    return np.zeros(len(grouped))
  squared = ((grouped[:, :, None] - grouped[:, None]) ** 2).mean(-1)
  return np.sqrt(squared).sum((1, 2)) / (per_pair * (per_pair - 1))


class Generated(NamedTuple):
  """The chosen image per pair, the generator's probabilities of both readings,
  whether each reading is its top class ((2, N)), the generation's timing, every
  candidate drawn with its pair (each pair's candidates consecutive, a-major: its K
  first-round ones, then any of the second round), and which candidates are of the
  first round."""
  images: np.ndarray
  p_upright: np.ndarray
  p_rotated: np.ndarray
  reads: np.ndarray
  timing: dict[str, float]
  candidates: np.ndarray
  candidate_pairs: np.ndarray
  first_round: np.ndarray


def reader_scores(graphdef: nnx.GraphDef, params: nnx.State, images: np.ndarray,
                  candidate_pairs: np.ndarray) -> np.ndarray:
  """(N,): a readability model's probability of the target digit in each
  candidate's weaker view (it reads the views as the classifier does)."""
  read_upright, read_rotated, _ = pair_probabilities(
      graphdef, params, jnp.asarray(images), candidate_pairs)
  return np.minimum(read_upright, read_rotated)


def choose_by_reader(graphdef: nnx.GraphDef, params: nnx.State, images: np.ndarray,
                     candidate_pairs: np.ndarray, candidates: int) -> np.ndarray:
  """The index of each pair's kept candidate when a readability model chooses: the
  candidate whose weaker view it gives the highest target probability
  (`reader_scores`; `choose` without typicality). `choice_replay` replays exactly
  this choice."""
  return choose(reader_scores(graphdef, params, images, candidate_pairs), None,
                candidates)


def hard_pairs(scores: np.ndarray, candidates: int, count: int) -> np.ndarray:
  """The `count` pairs (indices, ascending) whose best candidate scores lowest, for
  K = `candidates` consecutive candidates per pair: those a second round serves."""
  best = scores.reshape(-1, candidates).max(1)
  return np.sort(np.argsort(best, kind='stable')[:count])


def generate(config: ml_collections.ConfigDict, pairs: np.ndarray,
             workspace: io.Workspace) -> Generated:
  """K = config.candidates candidates per pair by the generator `config.generator`
  names, all in one compiled program, each pair keeping the one `choose` picks (or
  the readability model's best). With `hard_pairs` > 0, a second round draws
  `hard_pair_candidates` more for each of the `hard_pairs` pairs whose best
  first-round candidate the chooser scores lowest (search spent where it is
  needed), and each pair keeps the best of all its candidates. With
  `readability_with_classifier`, the kept one is the best by the product of the
  readability model's and the generating classifier's weaker readings.
  A bad config is refused before anything is trained or written."""
  module = check(config)
  if config.hard_pairs > len(pairs):
    raise ConfigError(f'hard_pairs ({config.hard_pairs}) must be at most the number '
                      f'of pairs ({len(pairs)})')
  reader = readability.load(config.readability, workspace) if config.readability else None
  classifier, _ = train.get_classifier(config.classifier, workspace)
  graphdef, params = nnx.split(classifier)
  guide = base.Guide(*(reader if config.readability_guides
                       else guide_model(classifier, config, workspace)),
                     objectives.flip_objective(config.objective))
  # Without a second round, the first draws from the seed's key itself, as before.
  key = jax.random.key(config.seed)
  first_key, second_key = jax.random.split(key) if config.hard_pairs else (key, None)

  def draw_and_score(group, key):
    """The candidates of the pairs `group` indexes, with their classifier readings
    and choice scores."""
    candidate_pairs = pairs[group]
    drawn = module.draw(config.generator, candidate_pairs, guide, workspace, key)
    p_upright, p_rotated, reads = pair_probabilities(
        graphdef, params, jnp.asarray(drawn.images), candidate_pairs)
    scores = (reader_scores(*reader, drawn.images, candidate_pairs) if reader
              else choice_scores(np.minimum(p_upright, p_rotated), drawn.typicality))
    return drawn, (drawn.images, p_upright, p_rotated, reads.T, scores)

  group = np.repeat(np.arange(len(pairs)), config.candidates)
  drawn, found = draw_and_score(group, first_key)
  rounds = [drawn]
  if config.hard_pairs:
    second = np.repeat(hard_pairs(found[-1], config.candidates, config.hard_pairs),
                       config.hard_pair_candidates)
    drawn, more = draw_and_score(second, second_key)
    rounds.append(drawn)
    group = np.concatenate([group, second])
    found = [np.concatenate(both) for both in zip(found, more)]
  # Each pair's candidates consecutive, a-major, first-round ones first.
  order = np.argsort(group, kind='stable')
  group = group[order]
  images, p_upright, p_rotated, reads, scores = (values[order] for values in found)
  if config.readability_with_classifier:
    scores = scores * np.minimum(p_upright, p_rotated)
  best = best_in_groups(scores, group, len(pairs))
  run_seconds = sum(d.seconds.run for d in rounds)
  timing_summary = {'compile_seconds': sum(d.seconds.compile for d in rounds),
                    'run_seconds': run_seconds,
                    'image_steps_per_second':
                        sum(len(d.images) * d.steps for d in rounds) / run_seconds}
  return Generated(images[best], p_upright[best], p_rotated[best], reads[best].T,
                   timing_summary, images, pairs[group],
                   order < len(pairs) * config.candidates)
