"""Scores a reading test: what blind readers read, per rater and by their majority.

Per instruction (readers under `forced` and `confident` are never pooled):
- each rater's controls: the share of real digits read as their label, and the share
  of catch trials called a digit — noise, and two digits overlaid, apart. A rater
  under `min_real_accuracy` on real digits, who calls more than `max_catch_digits` of
  the instruction's catch trials digits (`reading_test.CANT_TELL_CATCHES`: noise under
  `forced`, both kinds under `confident`), or who left trials unanswered, is flagged
  and left out of the majority;
- the majority: a view is read when more than half of the unflagged raters answer
  its digit (a tie is not a majority);
- per input: views read upright and turned, pairs read both ways with a 95% Wilson
  interval, and which pairs;
- agreement: Fleiss' κ over every trial, answers 0–9 and "can't tell" as categories;
- paired tests: for two inputs of the same pairs, McNemar's exact test on the pairs
  the majority reads both ways in one and not the other.
"""

import itertools
from typing import Any

import numpy as np
from statsmodels.stats import contingency_tables
from statsmodels.stats import inter_rater
from statsmodels.stats import proportion

from flipnum_jax import reading_test as reading_lib


def is_digit(answers: np.ndarray) -> np.ndarray:
  """Which answers name a digit (not "can't tell", not unanswered)."""
  return (answers >= 0) & (answers <= 9)


def called_digit(answers: np.ndarray, trials: np.ndarray) -> float:
  """The share of `trials` (a boolean mask) answered with a digit; 0 when none."""
  return float(np.mean(is_digit(answers[trials]))) if trials.any() else 0.0


def catch_trials(test: reading_lib.Test, instruction: str) -> np.ndarray:
  """The trials whose right answer is "can't tell" under `instruction`."""
  return np.isin(test.source, reading_lib.CANT_TELL_CATCHES[instruction])


def rater_controls(answers: np.ndarray, test: reading_lib.Test, instruction: str,
                   min_real_accuracy: float, max_catch_digits: float) -> dict[str, Any]:
  """One rater's answers (T,) on the controls, and whether they are flagged."""
  real = test.source == reading_lib.REAL_CONTROL
  real_accuracy = float(np.mean(answers[real] == test.digit[real]))
  catch_digits = called_digit(answers, catch_trials(test, instruction))
  answered = int(np.sum(answers != reading_lib.UNANSWERED))
  reasons = []
  if answered < len(answers):
    reasons.append(f'answered {answered} of {len(answers)}')
  if real_accuracy < min_real_accuracy:
    reasons.append(f'real digits {100 * real_accuracy:.0f}% < {100 * min_real_accuracy:.0f}%')
  if catch_digits > max_catch_digits:
    reasons.append(f'called {100 * catch_digits:.0f}% of catch trials digits')
  return {'answered': answered, 'real_accuracy': real_accuracy,
          'catch_called_digit': catch_digits,
          'noise_called_digit': called_digit(answers, test.source == reading_lib.NOISE),
          'overlay_called_digit': called_digit(answers, test.source == reading_lib.OVERLAY),
          'flagged': bool(reasons), 'flags': reasons}


def majority_correct(correct: np.ndarray) -> np.ndarray:
  """(R, T) booleans (rater r answered trial t's digit) → (T,): more than half did.
  With no rater, nothing is read."""
  return correct.sum(0) * 2 > correct.shape[0] if correct.shape[0] else \
      np.zeros(correct.shape[1], bool)


def input_views(read: np.ndarray, test: reading_lib.Test, index: int) -> np.ndarray:
  """(T,) verdicts (or answers) → (2, N) for input `index`: row 0 upright, row 1
  turned."""
  n = len(test.inputs[index]['pairs'])
  views = np.zeros((2, n), read.dtype)
  mine = test.source == index
  views[test.view[mine], test.item[mine]] = read[mine]
  return views


def both_ways(views: np.ndarray, pairs: np.ndarray) -> dict[str, Any]:
  """Rates of (2, N) view verdicts, with the both-ways count, its 95% Wilson interval
  and the pairs read both ways."""
  both = views[0] & views[1]
  low, high = proportion.proportion_confint(int(both.sum()), len(both), alpha=0.05,
                                            method='wilson')
  return {'upright': float(views[0].mean()), 'rotated': float(views[1].mean()),
          'both': float(both.mean()), 'both_count': int(both.sum()), 'pairs': len(both),
          'both_interval': [float(low), float(high)],
          'both_ways_pairs': pairs[both].tolist()}


def fleiss_kappa(answers: np.ndarray) -> float | None:
  """Fleiss' κ of (R, T) answers (categories 0–9 and can't tell); None with fewer
  than two raters or when every answer is the same category."""
  if answers.shape[0] < 2:
    return None
  table, _ = inter_rater.aggregate_raters(answers.T, n_cat=reading_lib.CANT_TELL + 1)
  kappa = inter_rater.fleiss_kappa(table, method='fleiss')
  return None if not np.isfinite(kappa) else float(kappa)


def mcnemar(first: np.ndarray, second: np.ndarray) -> dict[str, Any]:
  """McNemar's exact test on paired booleans (the same pairs, two inputs)."""
  table = [[int(np.sum(first & second)), int(np.sum(first & ~second))],
           [int(np.sum(~first & second)), int(np.sum(~first & ~second))]]
  result = contingency_tables.mcnemar(table, exact=True)
  return {'both': table[0][0], 'first_only': table[0][1], 'second_only': table[1][0],
          'neither': table[1][1], 'p_value': float(result.pvalue)}


def score_instruction(readings: list[reading_lib.Readings], test: reading_lib.Test,
                      instruction: str, min_real_accuracy: float,
                      max_catch_digits: float) -> dict[str, Any]:
  """Everything evaluation.json says of the raters under one instruction."""
  answers = np.stack([r.answers for r in readings])
  correct = answers == test.digit[None]
  # rater_views[r][i]: rater r's (2, N) verdicts on input i.
  rater_views = [[input_views(c, test, i) for i in range(len(test.inputs))] for c in correct]
  raters = {}
  for reading, own_views in zip(readings, rater_views):
    raters[reading.rater] = {
        'form': reading.form,
        **rater_controls(reading.answers, test, instruction, min_real_accuracy,
                         max_catch_digits),
        'inputs': {d['name']: both_ways(v, np.array(d['pairs']))
                   for d, v in zip(test.inputs, own_views)}}
  kept = np.array([not raters[r.rater]['flagged'] for r in readings])
  read = majority_correct(correct[kept])
  real = test.source == reading_lib.REAL_CONTROL
  catch = catch_trials(test, instruction)
  majority_answers = answers[kept]
  catch_called = majority_correct(is_digit(majority_answers[:, catch]))
  inputs = {}
  views = {}
  for i, described in enumerate(test.inputs):
    views[described['name']] = input_views(read, test, i)
    inputs[described['name']] = both_ways(views[described['name']],
                                          np.array(described['pairs']))
    # Per pair, the share of the majority's raters who read it both ways (for the
    # heat-map: how close to the verdict each pair came).
    each = [v[i] for v, k in zip(rater_views, kept) if k]
    inputs[described['name']]['raters_both_share'] = \
        np.mean([v[0] & v[1] for v in each], 0).tolist() if each else None
  paired = []
  for (i, a), (j, b) in itertools.combinations(enumerate(test.inputs), 2):
    if a['pairs'] == b['pairs']:
      va, vb = views[a['name']], views[b['name']]
      paired.append({'first': a['name'], 'second': b['name'],
                     **mcnemar(va[0] & va[1], vb[0] & vb[1])})
  return {'raters': raters, 'majority_of': [r.rater for r, k in zip(readings, kept) if k],
          'kappa': fleiss_kappa(majority_answers),
          'controls': {'real_accuracy': float(read[real].mean()),
                       'catch_called_digit': float(catch_called.mean()) if catch.any() else 0.0},
          'inputs': inputs, 'paired_tests': paired,
          'views': {name: v.tolist() for name, v in views.items()}}


def score(readings: list[reading_lib.Readings], test: reading_lib.Test,
          min_real_accuracy: float, max_catch_digits: float) -> dict[str, Any]:
  """The reader results of a test, per instruction that has readings."""
  by_instruction = {}
  for reading in readings:
    by_instruction.setdefault(reading.instruction, []).append(reading)
  return {'test_hash': test.hash, 'trials': len(test.images),
          'min_real_accuracy': min_real_accuracy, 'max_catch_digits': max_catch_digits,
          'inputs': {d['name']: d['images_sha256'] for d in test.inputs},
          'instructions': {instruction: score_instruction(group, test, instruction,
                                                          min_real_accuracy, max_catch_digits)
                           for instruction, group in sorted(by_instruction.items())}}


def disagreements(reader_views: np.ndarray, panel_views: np.ndarray,
                  pairs: np.ndarray) -> dict[str, Any]:
  """Where the readers' majority and the panel disagree on one input: pairs one
  reads both ways and the other does not, and the views (by digit and side) the
  panel reads and the readers do not, most first."""
  reader_both = reader_views[0] & reader_views[1]
  panel_both = panel_views[0] & panel_views[1]
  missed = {}
  for side, name in enumerate(('upright', 'turned')):
    for digit in range(10):
      wanted = pairs[:, side] == digit
      count = int(np.sum(panel_views[side] & ~reader_views[side] & wanted))
      if count:
        missed[f'{digit} {name}'] = [count, int(np.sum(panel_views[side] & wanted))]
  return {'panel_only_pairs': pairs[panel_both & ~reader_both].tolist(),
          'readers_only_pairs': pairs[reader_both & ~panel_both].tolist(),
          'panel_only_views': dict(sorted(missed.items(), key=lambda kv: -kv[1][0]))}
