"""Pools the blind readings of several reading tests over the images they share.

One test has three readers per instruction, and readers differ by up to ±8 points on
the same images. When several tests showed the same images (an input is known by
its images' SHA-256: `pairs` is the paired baseline of every test), their unflagged
raters together say how often each view is read far more precisely. Per instruction
(readers under `forced` and `confident` are never pooled):
- per input: the raters who read it, over all tests; per view, the share of them who
  named its digit; the pooled majority (a share over ½) both ways; per pair, the
  weaker view's share; the answers given instead of each digit;
- per set of pairs (every input of the same pairs): how many of the inputs each pair
  is read both ways in, by the pooled majority, and their union — the pairs *some*
  input gets read. Only a chooser that knew the readers could reach the union: it
  bounds what choosing among these images can do, not what a generator can.
Rater flags are each test's own (`readers.rater_controls`).
"""

import collections
import pathlib
import re
from typing import Any

import ml_collections
import numpy as np

from flipnum_jax import io
from flipnum_jax import plots
from flipnum_jax import reading_test as reading_lib
from flipnum_jax.errors import ConfigError
from flipnum_jax.judges import readers


def unflagged_rater_views(test: reading_lib.Test, readings: list[reading_lib.Readings],
                          instruction: str, min_real_accuracy: float,
                          max_catch_digits: float) -> dict[str, list[np.ndarray]]:
  """Input hash → the (2, N) answers (0–9, CANT_TELL) of each rater of `instruction`
  whom their test's controls do not flag; row 0 upright, row 1 turned."""
  answers_by_input = collections.defaultdict(list)
  for reading in readings:
    if reading.instruction != instruction or readers.rater_controls(
        reading.answers, test, instruction, min_real_accuracy, max_catch_digits)['flagged']:
      continue
    for index, described in enumerate(test.inputs):
      answers_by_input[described['images_sha256']].append(
          readers.input_views(reading.answers, test, index))
  return answers_by_input


def pool(tests: list[tuple[reading_lib.Test, list[reading_lib.Readings]]], instruction: str,
         min_real_accuracy: float, max_catch_digits: float) -> dict[str, Any]:
  """The pooled readings of one instruction (see the module docstring)."""
  described, answers, tests_of = {}, collections.defaultdict(list), collections.defaultdict(list)
  for test_index, (test, readings) in enumerate(tests):
    for digest, rows in unflagged_rater_views(test, readings, instruction,
                                              min_real_accuracy, max_catch_digits).items():
      described.setdefault(digest, next(d for d in test.inputs if d['images_sha256'] == digest))
      answers[digest] += rows
      tests_of[digest].append(test_index)
  inputs, both_by_pairs = {}, collections.defaultdict(list)
  for digest, rows in answers.items():
    pairs = np.array(described[digest]['pairs'])
    given = np.stack(rows)  # (raters, 2, N)
    share = (given == pairs.T[None]).mean(0)  # (2, N): per view, the raters who read it
    both = (share > 0.5).all(0)
    instead = {}
    for view, name in enumerate(('upright', 'turned')):
      for digit in np.unique(pairs[:, view]):
        other = given[:, view, pairs[:, view] == digit]
        other = other[other != digit]
        instead[f'{digit} {name}'] = {('?' if a == reading_lib.CANT_TELL else str(a)): int(n)
                                     for a, n in collections.Counter(other.tolist()).most_common()}
    inputs[digest] = {'name': described[digest]['name'], 'tests': tests_of[digest],
                      'raters': len(rows), 'upright': float(share[0].mean()),
                      'turned': float(share[1].mean()), 'both_count': int(both.sum()),
                      'pairs': pairs.tolist(), 'both_ways': both.tolist(),
                      'weaker_view_share': share.min(0).tolist(), 'read_instead': instead}
    both_by_pairs[pairs.tobytes()].append((digest, pairs, both))
  pair_sets = []
  for members in both_by_pairs.values():
    read = np.stack([both for _, _, both in members])
    pair_sets.append({'pairs': members[0][1].tolist(), 'inputs': [d for d, _, _ in members],
                      'read_in': read.sum(0).tolist(), 'union': int(read.any(0).sum()),
                      'union_pairs': members[0][1][read.any(0)].tolist()})
  return {'inputs': inputs, 'pair_sets': pair_sets}


def _slug(name: str) -> str:
  return re.sub(r'[^A-Za-z0-9_-]+', '_', name).strip('_') or 'input'


def run_experiment(config: ml_collections.ConfigDict, workspace: io.Workspace,
                   name: str) -> None:
  """The `pool_readings` job: pools `config.tests`' readings; writes pooled.json and a
  heat-map per input and per set of pairs read in more than one input."""
  folders = [pathlib.Path(t) for t in config.tests.split(',') if t]
  if not folders:
    raise ConfigError('tests names no reading test (comma-separated folders)')
  tests = []
  for folder in folders:  # read (and so refuse bad files) before writing anything
    test = reading_lib.load_test(folder)
    readings = reading_lib.load_readings(folder, test)
    if not readings:
      raise ConfigError(f'tests: {folder} holds no readings')
    tests.append((test, readings))
  out_dir = workspace.output_dir(name)
  pooled = {}
  for instruction in reading_lib.INSTRUCTIONS:
    result = pool(tests, instruction, config.min_real_accuracy, config.max_catch_digits)
    if not result['inputs']:
      continue
    pooled[instruction] = result
    for digest, r in result['inputs'].items():
      pairs = np.array(r['pairs'])
      plots.readable_heatmap(
          out_dir / f"{_slug(r['name'])}_{digest[:8]}_{instruction}.png", pairs,
          np.array(r['both_ways']), np.array(r['weaker_view_share']),
          title=f"{r['name']} ({digest[:8]}): {r['raters']} blind readers, {instruction}",
          value_label="share of readers naming the weaker view's digit",
          reader='their pooled majority')
      print(f"{r['name']} ({digest[:8]}), {instruction}: {r['raters']} readers in "
            f"{len(r['tests'])} test(s); their pooled majority reads {r['both_count']} of "
            f"{len(pairs)} pairs both ways")
    for k, pair_set in enumerate(result['pair_sets']):
      if len(pair_set['inputs']) < 2:
        continue
      pairs = np.array(pair_set['pairs'])
      read_in = np.array(pair_set['read_in'])
      plots.readable_heatmap(
          out_dir / f'union_{k}_{instruction}.png', pairs, read_in > 0,
          read_in / len(pair_set['inputs']),
          title=f"{len(pair_set['inputs'])} inputs of the same pairs, {instruction}",
          value_label='share of the inputs read both ways', reader='some input')
      print(f"{len(pair_set['inputs'])} inputs of the same {len(pairs)} pairs, {instruction}: "
            f"some input is read both ways on {pair_set['union']}")
  io.write_json(out_dir / 'pooled.json', {
      'tests': [str(f) for f in folders], 'min_real_accuracy': config.min_real_accuracy,
      'max_catch_digits': config.max_catch_digits, 'instructions': pooled})
