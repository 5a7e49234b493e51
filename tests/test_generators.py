"""The generator protocol, the candidate choice and every registered generator."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from experiments import blog_pairs
from experiments import pairs as pairs_experiment
from experiments import pairs_retrieval
from experiments import pairs_strokes
from experiments import pairs_vae
from flipnum_jax import generators
from flipnum_jax import io
from flipnum_jax import models
from flipnum_jax import objectives
from flipnum_jax import readability
from flipnum_jax import train
from flipnum_jax.errors import ConfigError
from flipnum_jax.generators import base
from flipnum_jax.generators import handwriting
from flipnum_jax.generators import retrieval


def test_choose_keeps_each_pairs_most_readable_candidate():
  min_probability = np.array([0.1, 0.9, 0.3, 0.8, 0.2, 0.4, 0.7, 0.6, 0.5])
  np.testing.assert_array_equal(generators.choose(min_probability, None, 3), [1, 3, 6])


def test_choose_with_typicality_prefers_the_typical_among_the_readable():
  # Pair 0: candidates 1 and 2 are read both ways; 2 is more typical, so it wins
  # over 1's higher probability. Pair 1: none is read; the most readable wins.
  min_probability = np.array([0.3, 0.95, 0.6, 0.2, 0.4, 0.1])
  typicality = np.array([[0.0, 0.0], [0.5, 0.9], [0.2, 0.3],
                         [0.0, 0.0], [0.9, 0.9], [0.0, 0.0]])
  np.testing.assert_array_equal(generators.choose(min_probability, typicality, 3), [2, 4])


def test_best_in_groups_takes_each_groups_best_first_on_ties():
  scores = np.array([0.2, 0.9, 0.5, 0.5, 0.1, 0.9, 0.7])
  group = np.array([1, 0, 2, 2, 1, 1, 0])  # groups of 2, 3 and 2, interleaved
  np.testing.assert_array_equal(generators.best_in_groups(scores, group, 3), [1, 5, 2])


def test_hard_pairs_are_those_whose_best_candidate_scores_lowest():
  scores = np.array([0.9, 0.1, 0.2, 0.3, 0.8, 0.95, 0.25, 0.05])  # K = 2, four pairs
  np.testing.assert_array_equal(generators.hard_pairs(scores, 2, 2), [1, 3])


def pair_index(pairs: np.ndarray, candidate_pairs: np.ndarray) -> np.ndarray:
  """Each candidate's pair, as its row in `pairs`."""
  return np.array([np.flatnonzero((pairs == row).all(1))[0] for row in candidate_pairs])


def test_a_second_round_draws_more_for_the_pairs_chosen_worst(tmp_path, tiny_mnist):
  config = blog_pairs.get_config('smoke')  # ascent, 2 × 2 pairs, no typicality
  config.candidates, config.hard_pairs, config.hard_pair_candidates = 2, 1, 3
  workspace = io.Workspace(tmp_path)
  workspace.__dict__['mnist'] = tiny_mnist
  pairs = np.array([[3, 7], [3, 9], [6, 7], [6, 9]])
  generated = generators.generate(config, pairs, workspace)
  assert generated.candidates.shape == (4 * 2 + 3, 28, 28)
  # Same seed and config, same candidates and choice, bit for bit.
  again = generators.generate(config, pairs, workspace)
  np.testing.assert_array_equal(again.candidates, generated.candidates)
  np.testing.assert_array_equal(again.images, generated.images)
  assert generated.first_round.sum() == 8
  # Each pair's candidates consecutive and a-major, its first round first.
  group = pair_index(pairs, generated.candidate_pairs)
  assert np.all(np.diff(group) >= 0)
  for pair in range(4):
    assert generated.first_round[group == pair][:2].all()
  classifier, _ = train.get_classifier(config.classifier, workspace)
  p_upright, p_rotated, _ = generators.pair_probabilities(
      *nnx.split(classifier), jnp.asarray(generated.candidates), generated.candidate_pairs)
  scores = np.minimum(p_upright, p_rotated)
  first = generated.first_round
  # The second round went to the pair whose best first-round candidate is worst ...
  worst = generators.hard_pairs(scores[first], 2, 1)[0]
  assert (group[~first] == worst).all() and (group == worst).sum() == 5
  # ... and every pair keeps the best of all its candidates.
  for pair in range(4):
    best = np.flatnonzero(group == pair)[np.argmax(scores[group == pair])]
    np.testing.assert_array_equal(generated.images[pair], generated.candidates[best])
  for key, value, message in (('hard_pairs', 5, 'at most the number of pairs'),
                              ('hard_pairs', -1, 'hard_pairs must be ≥ 0'),
                              ('hard_pair_candidates', 0, 'hard_pair_candidates ≥ 1')):
    bad = blog_pairs.get_config('smoke')
    bad.hard_pairs, bad.hard_pair_candidates = 1, 1
    bad[key] = value
    with pytest.raises(ConfigError, match=message):
      generators.generate(bad, pairs, workspace)


def test_the_readers_model_times_the_classifier_chooses_and_the_model_alone_finds_hard_pairs(
    tmp_path, mnist_dir):
  # Real digits as candidates (retrieval, ranked by the committed generating
  # classifier), read by the committed readers' model: a pair's candidates differ,
  # and the two models prefer different ones for the pair (2, 5).
  config = pairs_retrieval.get_config('')
  config.classifier = pairs_experiment.get_config().classifier
  config.generator.per_class, config.readability_guides = 20, False
  config.candidates, config.hard_pairs, config.hard_pair_candidates = 3, 1, 2
  config.readability, config.readability_with_classifier = 'readability_forced3', True
  workspace = io.Workspace(tmp_path, str(mnist_dir))
  pairs = np.array([[2, 5], [5, 2], [6, 9], [9, 6]])
  generated = generators.generate(config, pairs, workspace)
  candidates, candidate_pairs = generated.candidates, generated.candidate_pairs
  group = pair_index(pairs, candidate_pairs)
  # The readers' model's weaker reading and the classifier's, each view by hand.
  reader = readability.load(config.readability, workspace)
  index = np.arange(len(candidates))
  read = np.minimum(
      readability.view_answer_probs(*reader, candidates)[index, candidate_pairs[:, 0]],
      readability.view_answer_probs(*reader, candidates[:, ::-1, ::-1])[
          index, candidate_pairs[:, 1]])
  classifier, _ = train.get_classifier(config.classifier, workspace)
  p_upright, p_rotated, _ = generators.pair_probabilities(
      *nnx.split(classifier), jnp.asarray(candidates), candidate_pairs)
  product = read * np.minimum(p_upright, p_rotated)
  first = generated.first_round
  # The second round went to the pair the readers' model alone rates worst ...
  worst = np.argmin(read[first].reshape(4, 3).max(1))
  assert (group[~first] == worst).all()
  # ... and each pair keeps the best by the product, not by the model alone.
  kept = [np.flatnonzero(group == pair)[np.argmax(product[group == pair])]
          for pair in range(4)]
  np.testing.assert_array_equal(generated.images, candidates[kept])
  by_reader = [np.flatnonzero(group == pair)[np.argmax(read[group == pair])]
               for pair in range(4)]
  assert kept != by_reader
  config.readability = ''
  with pytest.raises(ConfigError, match='readability_with_classifier needs'):
    generators.generate(config, pairs, workspace)


@pytest.mark.parametrize('name', sorted(generators.REGISTRY))
def test_every_generator_declares_checks_and_draws_one_image_per_candidate(
    name, tmp_path, tiny_mnist):
  module = generators.REGISTRY[name]
  config = module.default_config()
  assert config.name == name
  module.check(config)  # its defaults are valid
  experiment = {'ascent': blog_pairs, 'prior': pairs_vae, 'flow': pairs_experiment,
                'retrieval': pairs_retrieval, 'strokes': pairs_strokes}[name]
  smoke = experiment.get_config('smoke')
  assert smoke.generator.name == name and set(smoke.generator.keys()) == set(config.keys())
  workspace = io.Workspace(tmp_path)
  workspace.__dict__['mnist'] = tiny_mnist  # its models train on the small set, fast
  classifier, _ = train.get_classifier(smoke.classifier, workspace)
  guide = base.Guide(*nnx.split(classifier), objectives.flip_objective(smoke.objective))
  candidate_pairs = np.array([[3, 7], [3, 7], [6, 9], [6, 9]])
  key = jax.random.key(0)
  drawn = module.draw(smoke.generator, candidate_pairs, guide, workspace, key)
  assert drawn.images.shape == (4, 28, 28) and drawn.images.dtype == np.float32
  assert drawn.steps == smoke.generator.get('steps', 1)  # a search is one pass
  assert drawn.typicality is None or drawn.typicality.shape == (4, 2)
  # Each row is drawn for its own pair, and the same key draws the same images,
  # bit for bit.
  assert not np.allclose(drawn.images[0], drawn.images[2])
  again = module.draw(smoke.generator, candidate_pairs, guide, workspace, key)
  np.testing.assert_array_equal(again.images, drawn.images)


def test_candidate_spread_is_the_mean_blurred_rms_distance_within_each_pair():
  blank, ink = np.zeros((28, 28), np.float32), np.ones((28, 28), np.float32)
  stroke = np.zeros((28, 28), np.float32)
  stroke[4:24, 13:15] = 1.0
  moved = np.roll(stroke, 1, axis=1)  # the same stroke, one pixel over
  other = stroke.T  # a stroke across
  # Pair 0: three copies of one glyph; pair 1: blank, full ink, blank. Blurring
  # keeps a constant image and its distance to another constant: 1 and 0, so the
  # mean over the six ordered pairs is (1 + 1 + 0) / 3.
  candidates = np.stack([stroke, stroke, stroke, blank, ink, blank])
  np.testing.assert_allclose(generators.candidate_spread(candidates, 3), [0, 2 / 3],
                             atol=1e-6)
  np.testing.assert_array_equal(generators.candidate_spread(candidates, 1), np.zeros(6))
  # A stroke moved by a pixel is nearer than a stroke across, by more than in pixels.
  near, far = generators.candidate_spread(np.stack([stroke, moved, stroke, other]), 2)
  assert near < 0.5 * far


def test_best_flips_keep_the_digits_whose_weaker_reading_is_highest(tiny_classifier):
  graphdef, params = tiny_classifier
  # 53 digits per class: 530 in all, so the search reads them in a full chunk of
  # 500 and a padded one.
  pools = jax.random.uniform(jax.random.key(1), (10, 53, 28, 28))
  pairs = np.array([[3, 7], [6, 9], [6, 6]])
  chosen, scores = retrieval.best_flips(graphdef, params, pools, jnp.asarray(pairs),
                                        count=4)
  # By hand: each digit of class a read alone, upright and turned, one at a time.
  for row, (a, b) in enumerate(pairs):
    digits = np.asarray(pools[a])
    upright = jax.nn.log_softmax(models.apply(graphdef, params, digits))[:, a]
    turned = jax.nn.log_softmax(models.apply(graphdef, params, digits[:, ::-1, ::-1]))[:, b]
    weaker = np.minimum(upright, turned)
    np.testing.assert_array_equal(chosen[row], np.argsort(-weaker)[:4])
    np.testing.assert_allclose(scores[row], np.sort(weaker)[::-1][:4], rtol=1e-5,
                               atol=1e-6)


def test_retrieval_draws_ranked_training_digits_of_the_upright_class(tmp_path, tiny_mnist,
                                                                     tiny_classifier):
  graphdef, params = tiny_classifier
  guide = base.Guide(graphdef, params, objectives.FlipObjective())
  workspace = io.Workspace(tmp_path)
  workspace.__dict__['mnist'] = tiny_mnist
  config = retrieval.default_config()
  config.per_class = 30
  candidate_pairs = np.array([[3, 7], [3, 7], [3, 7], [6, 9], [6, 9], [6, 9]])
  drawn = retrieval.draw(config, candidate_pairs, guide, workspace, jax.random.key(0))
  pools = handwriting.class_pools(tiny_mnist, 30)
  chosen, _ = retrieval.best_flips(graphdef, params, jnp.asarray(pools),
                                   jnp.array([[3, 7], [6, 9]]), count=3)
  # The k-th candidate of a pair is its k-th best digit a, unchanged.
  np.testing.assert_array_equal(drawn.images[:3], pools[3][np.asarray(chosen[0])])
  np.testing.assert_array_equal(drawn.images[3:], pools[6][np.asarray(chosen[1])])
  assert drawn.typicality is None
  config.per_class = 10**5
  with pytest.raises(ConfigError, match='smallest class'):
    retrieval.draw(config, candidate_pairs, guide, workspace, jax.random.key(0))
  config.per_class = 2
  with pytest.raises(ConfigError, match='only generator.per_class'):
    retrieval.draw(config, candidate_pairs, guide, workspace, jax.random.key(0))
  config.per_class = 0
  with pytest.raises(ConfigError, match='per_class must be ≥ 1'):
    retrieval.check(config)
