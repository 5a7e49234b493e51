import jax
import numpy as np
import pytest
from flax import nnx

from experiments import choice_replay as replay_experiment
from flipnum_jax import generators
from flipnum_jax import io
from flipnum_jax import models
from flipnum_jax import readability
from flipnum_jax import reading_test
from flipnum_jax.errors import ConfigError, DataError
from flipnum_jax.judges import choice_replay

CANT = reading_test.CANT_TELL


def test_majority_is_strict():
  answers = np.array([[3, 3, 7, CANT],
                      [3, 4, 7, 2],
                      [1, 5, 2, CANT]])
  # 3 by two of three; no majority; 7 by two; "can't tell" by two.
  np.testing.assert_array_equal(choice_replay.majority_answers(answers),
                                [3, reading_test.UNANSWERED, 7, CANT])
  two_raters = np.array([[3, 5], [3, 6]])  # a tie is no majority
  np.testing.assert_array_equal(choice_replay.majority_answers(two_raters),
                                [3, reading_test.UNANSWERED])


def test_views_are_matched_to_their_candidate_and_turn_and_scored_per_chooser():
  rng = np.random.default_rng(0)
  candidates = rng.uniform(size=(4, 28, 28)).astype(np.float32)  # 2 pairs × K = 2
  candidate_pairs = np.array([[3, 7], [3, 7], [6, 9], [6, 9]])
  # Shown in a shuffled order, each candidate upright and turned.
  order = [(2, 1), (0, 0), (3, 0), (1, 1), (2, 0), (0, 1), (1, 0), (3, 1)]
  shown = np.stack([candidates[c] if v == 0 else candidates[c, ::-1, ::-1]
                    for c, v in order])
  candidate, view = choice_replay.match_views(shown, candidates)
  np.testing.assert_array_equal(np.stack([candidate, view], 1), order)
  # The majority names the target everywhere but candidate 0 turned and candidate
  # 3 upright: candidates 1 and 2 are read both ways.
  majority = np.array([candidate_pairs[c, v] for c, v in order])
  majority[order.index((0, 1))] = CANT
  majority[order.index((3, 0))] = 5
  read = choice_replay.read_both_ways(majority, candidate, view, candidate_pairs)
  np.testing.assert_array_equal(read, [False, True, True, False])
  scores = choice_replay.replay({'first': np.array([0, 0]), 'second': np.array([1, 1]),
                                 'best': np.array([1, 0])}, read, 2)
  assert scores == {'first': 1, 'second': 1, 'best': 2}
  # Pair (3, 7) has one of its two candidates read, pair (6, 9) one.
  np.testing.assert_array_equal(choice_replay.pairs_by_candidates_read(read, 2), [0, 2, 0])
  three_each = np.array([0, 0, 1, 1, 0, 1], bool)
  np.testing.assert_array_equal(choice_replay.pairs_by_candidates_read(three_each, 3),
                                [0, 1, 1, 0])


def test_held_out_rater_scores_each_pick_by_the_other_raters_only():
  # 2 pairs × K = 2, views in candidate order; which candidates each rater reads
  # both ways (a candidate not read has its upright view answered "can't tell").
  candidate_pairs = np.array([[3, 7], [3, 7], [6, 9], [6, 9]])
  candidate, view = np.repeat(np.arange(4), 2), np.tile([0, 1], 4)
  read_by = np.array([[0, 1, 1, 1],   # rater A
                      [0, 1, 0, 1],   # rater B
                      [1, 1, 0, 0]])  # rater C
  targets = candidate_pairs[candidate, view]
  answers = np.where((read_by[:, candidate] == 1) | (view == 1), targets, CANT)
  scores = choice_replay.held_out_rater_replay(
      {'first': np.array([0, 0]), 'second': np.array([1, 1])}, answers, candidate,
      view, candidate_pairs, 2)
  # Held out A: B and C both read candidate 1 only; A keeps candidates 1 and 2 → 1.
  # Held out B: A and C read candidate 1 only; B keeps 1 and 3 → 1.
  # Held out C: A and B read candidates 1 and 3; C keeps 0 and (none read) 2 → 0.
  assert scores['one_reader'] == pytest.approx(2 / 3)
  assert scores['first'] == pytest.approx(0.0)
  assert scores['second'] == pytest.approx((1 + 1 + 2) / 3)
  with pytest.raises(DataError, match='two raters'):
    choice_replay.held_out_rater_replay({}, answers[:1], candidate, view,
                                        candidate_pairs, 2)


def test_views_drawn_on_another_machine_match_and_are_scored_as_shown():
  # The same seed on another machine: most views equal to rounding, one candidate
  # a little off (the sampler amplifies rounding). Each view still finds its own
  # candidate, and the choosers then see the images the readers saw.
  rng = np.random.default_rng(1)
  candidates = rng.uniform(size=(3, 28, 28)).astype(np.float32)
  drawn_there = candidates.copy()
  drawn_there[1] = np.clip(drawn_there[1] + rng.normal(0, 0.03, (28, 28)), 0, 1)
  order = [(1, 1), (2, 0), (0, 1), (1, 0), (0, 0), (2, 1)]
  shown = np.stack([drawn_there[c] if v == 0 else drawn_there[c, ::-1, ::-1]
                    for c, v in order])
  candidate, view = choice_replay.match_views(shown, candidates)
  np.testing.assert_array_equal(np.stack([candidate, view], 1), order)
  scored = choice_replay.shown_candidates(shown, candidate, view, candidates)
  np.testing.assert_array_equal(scored, drawn_there)


def test_a_view_of_another_run_is_refused():
  candidates = np.zeros((2, 28, 28), np.float32)
  with pytest.raises(DataError, match='view 0 of the readings shows none'):
    choice_replay.match_views(np.ones((1, 28, 28), np.float32), candidates)


def test_a_readability_model_keeps_the_candidate_whose_weaker_view_it_reads_best():
  spec = models.classifier_spec()
  spec.conv_features, spec.hidden, spec.num_classes = (4, 8), 16, 11
  reader = nnx.split(models.make_classifier(spec, jax.random.key(5)))
  images = np.asarray(jax.random.uniform(jax.random.key(6), (6, 28, 28)))
  candidate_pairs = np.array([[3, 7]] * 3 + [[6, 9]] * 3)
  kept = generators.choose_by_reader(*reader, images, candidate_pairs, 3) % 3
  # By hand: each view's softmax, the target's probability in the weaker view.
  upright = readability.view_answer_probs(*reader, images)
  turned = readability.view_answer_probs(*reader, images[:, ::-1, ::-1])
  index = np.arange(6)
  weaker = np.minimum(upright[index, candidate_pairs[:, 0]],
                      turned[index, candidate_pairs[:, 1]]).reshape(2, 3)
  np.testing.assert_array_equal(kept, weaker.argmax(1))
  assert len(set(weaker.argmax(1).tolist() + weaker.argmin(1).tolist())) > 1


def test_replay_refuses_a_judge_as_chooser(tmp_path):
  config = replay_experiment.get_config()
  config.candidates_file, config.readings, config.readability = 'c.npz', 'r.npz', 'judge_cnn'
  with pytest.raises(ConfigError, match='not a judge'):
    choice_replay.run_experiment(config, io.Workspace(tmp_path), 'choice_replay')
