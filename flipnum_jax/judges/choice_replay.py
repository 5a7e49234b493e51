"""Replays candidate choosers against blind readings of every candidate.

The committed readings files (`readings/pool*.npz`) hold blind readers' answers to
every candidate view of a `pairs:classic` run that is never reported (seeds 1 and 2,
K = 4).
With them, any generator-side chooser can be scored without a new reading test: for
each pair, the candidate it would keep, and whether the readers' majority (a strict
majority of the file's raters) read that candidate both ways. The choosers replayed:
- `first`: each pair's first candidate (no choice at all);
- `generator`: the choice `pairs:classic` makes (`generators.choose`: among the
  candidates the generating classifier reads both ways, the flow model's most
  typical; its typicality check drawn with the key `pairs:classic` draws it with,
  from `seed`);
- `typicality`: the flow model's most typical candidate alone;
- `veto:<members>` (lever 5 of the readers' issue): `generator`'s ranking, with the
  candidates that every member of a generator-side ensemble reads both ways (top
  class) ranked first — members of other families than the generating classifier;
- `reader:<name>` (with `readability` naming a readability model): the candidate
  whose weaker view that model most expects a reader to name, as `pairs
  --config.readability=<name>` chooses. Trained on the readings of other pools only
  (leave one pool out), it replays that chooser on a seed it has not seen;
- `readers`: the best the readers themselves would pick, a ceiling no chooser can
  pass — but an optimistic one, since the same readers pick and score.
Every chooser is also scored with one rater held out at a time (`held_out_rater_replay`):
that rater's own pick (`one_reader`) against the others' majority, beside each
chooser scored by the same others — how far a chooser is from one blind reader's
judgement when no reader scores their own pick.
The readings only score choosers here; they never choose a reported image.
"""

import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import scipy.optimize
from absl import logging
from flax import nnx

from flipnum_jax import data
from flipnum_jax import exchange
from flipnum_jax import generators
from flipnum_jax import io
from flipnum_jax import readability
from flipnum_jax import reading_test as reading_lib
from flipnum_jax import train
from flipnum_jax import views
from flipnum_jax.errors import ConfigError, DataError
from flipnum_jax.generators import flow

CLASS_MEANS = 'class_means'  # the nearest class mean in pixels: no training


def majority_answers(answers: np.ndarray) -> np.ndarray:
  """(V,) the answer a strict majority of the raters (rows of `answers`, R × V) gave
  each view, or `reading_test.UNANSWERED` where none has a majority."""
  codes = reading_lib.CANT_TELL + 1
  counts = np.stack([(answers == code).sum(0) for code in range(codes)])
  return np.where(2 * counts.max(0) > answers.shape[0], counts.argmax(0),
                  reading_lib.UNANSWERED)


def match_views(shown: np.ndarray, candidates: np.ndarray,
                tolerance: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
  """For each view in `shown` (V, 28, 28), the candidate (of `candidates`, N × 28 ×
  28) it shows and the view (0 upright, 1 turned): the one-to-one assignment of
  views to candidate views by least mean absolute difference. The same seed drawn
  on another machine differs by rounding that the sampler amplifies (up to 0.03 in
  mean absolute difference on a tenth of the views), so the match is the closest,
  not the exact; a DataError if a view lies farther than `tolerance` from its match
  (readings of another run)."""
  flat = np.concatenate([candidates, np.asarray(views.rot180(candidates))]).reshape(
      2 * len(candidates), -1)
  shown_flat = shown.reshape(len(shown), 1, -1)
  # A block of views at a time: all at once would hold views × candidates × 784.
  distance = np.concatenate([np.abs(shown_flat[i:i + 64] - flat[None]).mean(-1)
                             for i in range(0, len(shown), 64)])
  rows, index = scipy.optimize.linear_sum_assignment(distance)
  far = np.flatnonzero(distance[rows, index] > tolerance)
  if len(far):
    raise DataError(f'view {rows[far[0]]} of the readings shows none of the candidates '
                    '(readings of another run?)')
  index = index[np.argsort(rows)]
  return index % len(candidates), index // len(candidates)


def shown_candidates(shown: np.ndarray, candidate: np.ndarray, view: np.ndarray,
                     candidates: np.ndarray) -> np.ndarray:
  """`candidates` with each one that was shown replaced by the image the readers
  saw (its upright view, or its turned view turned back), so that choosers score
  exactly what was read."""
  read = candidates.copy()
  read[candidate] = np.where(view[:, None, None] == 0, shown,
                             np.asarray(views.rot180(shown)))
  return read


def read_both_ways(majority: np.ndarray, candidate: np.ndarray, view: np.ndarray,
                   candidate_pairs: np.ndarray) -> np.ndarray:
  """(N,) whether the majority named each candidate's digit in both of its views
  (a view nobody was shown counts as unread)."""
  read = np.zeros((len(candidate_pairs), 2), bool)
  read[candidate, view] = majority == candidate_pairs[candidate, view]
  return read.all(1)


def replay(choices: dict[str, np.ndarray], read: np.ndarray,
           candidates: int) -> dict[str, int]:
  """Pairs read both ways when each chooser (name → (P,) index within each pair's
  `candidates`) keeps its candidate; `read` (P·K,) from `read_both_ways`."""
  per_pair = read.reshape(-1, candidates)
  return {name: int(per_pair[np.arange(len(per_pair)), choice].sum())
          for name, choice in choices.items()}


def held_out_rater_replay(choices: dict[str, np.ndarray], answers: np.ndarray,
                          candidate: np.ndarray, view: np.ndarray,
                          candidate_pairs: np.ndarray, candidates: int) -> dict[str, float]:
  """Pairs read both ways per chooser when the readers who score are not the reader
  who picks: for each rater in turn, `one_reader` keeps the first candidate that
  rater read both ways (else the first), and every chooser in `choices` is scored by
  the strict majority of the *other* raters; the mean over raters. The readers' own
  pick (`readers` in `replay`) is scored by the readers it was picked by, so it
  counts their chance agreements too; here a pick and its score share no reader,
  so `one_reader` is what a chooser as good as one blind reader would keep."""
  if len(answers) < 2:
    raise DataError(f'held-out scoring needs two raters or more, not {len(answers)}')
  totals: dict[str, float] = {}
  for rater in range(len(answers)):
    others = np.delete(answers, rater, axis=0)
    picked = read_both_ways(answers[rater], candidate, view,
                            candidate_pairs).reshape(-1, candidates).argmax(1)
    scored = read_both_ways(majority_answers(others), candidate, view, candidate_pairs)
    for name, count in replay({**choices, 'one_reader': picked}, scored,
                              candidates).items():
      totals[name] = totals.get(name, 0.0) + count / len(answers)
  return totals


def pairs_by_candidates_read(read: np.ndarray, candidates: int) -> np.ndarray:
  """(K + 1,): how many pairs have 0, 1, …, K of their `candidates` read both ways
  (`read` (P·K,) from `read_both_ways`). Pairs with none or all read leave a
  chooser nothing to gain."""
  return np.bincount(read.reshape(-1, candidates).sum(1), minlength=candidates + 1)


def class_mean_reads(mnist: data.Mnist, images: np.ndarray,
                     pairs: np.ndarray) -> np.ndarray:
  """(2, N) whether the nearest class mean of MNIST's training digits (in pixels) is
  a upright (row 0) and b turned (row 1)."""
  means = np.stack([mnist.train_images[mnist.train_labels == c].mean(0) / 255.0
                    for c in range(10)])
  nearest = lambda x: ((x[:, None] - means[None]) ** 2).sum((2, 3)).argmin(1)
  return np.stack([nearest(images) == pairs[:, 0],
                   nearest(np.asarray(views.rot180(images))) == pairs[:, 1]])


def choosers(config: ml_collections.ConfigDict, pairs_config: ml_collections.ConfigDict,
             images: np.ndarray, candidate_pairs: np.ndarray,
             workspace: io.Workspace) -> dict[str, np.ndarray]:
  """Each chooser's kept candidate per pair (index within the pair), generator-side
  models only."""
  candidates = pairs_config.candidates
  classifier, _ = train.get_classifier(pairs_config.classifier, workspace)
  p_upright, p_rotated, _ = generators.pair_probabilities(
      *nnx.split(classifier), jnp.asarray(images), candidate_pairs)
  graphdef, params = flow.get_model(pairs_config.generator.model, workspace)
  _, _, typicality_key = flow.sampling_keys(jax.random.key(pairs_config.seed))
  typicality = np.asarray(flow.flip_denoising_error(
      graphdef, params, jnp.asarray(images), jnp.asarray(candidate_pairs), typicality_key))
  min_probability = np.minimum(p_upright, p_rotated)
  generator_score = np.where(min_probability > 0.5,
                             2.0 - typicality.max(1) / (1.0 + typicality.max(1)),
                             min_probability)
  within = lambda scores: scores.reshape(-1, candidates).argmax(1)
  result = {'first': np.zeros(len(images) // candidates, np.int64),
            'generator': generators.choose(min_probability, typicality, candidates)
            % candidates,
            'typicality': within(-typicality.max(1))}
  member_reads = {CLASS_MEANS: class_mean_reads(workspace.mnist, images, candidate_pairs)}
  for name, member in config.members.items():
    model, _ = train.get_classifier(member, workspace)
    member_reads[name] = generators.pair_probabilities(
        *nnx.split(model), jnp.asarray(images), candidate_pairs)[2]
  if config.readability:
    result[f'reader:{config.readability}'] = generators.choose_by_reader(
        *readability.load(config.readability, workspace), images, candidate_pairs,
        candidates) % candidates
  for ensemble in config.ensembles:
    names = ensemble.split('+')
    unknown = set(names) - set(member_reads)
    if unknown:
      raise ConfigError(f'ensembles name unknown members {sorted(unknown)}; members: '
                        f'{sorted(member_reads)}')
    all_read = np.all([member_reads[n].all(0) for n in names], 0)
    # Read by every member ranks above any candidate that is not (scores < 2 there).
    result[f'veto:{ensemble}'] = within(generator_score + 2.0 * all_read)
  return result


def run_experiment(config: ml_collections.ConfigDict, workspace: io.Workspace,
                   name: str) -> None:
  from experiments import pairs as pairs_experiment  # the choice `pairs:classic` makes
  if not config.candidates_file or not config.readings:
    raise ConfigError('choice_replay needs candidates_file= (a pairs run\'s '
                      'candidates.npz) and readings= (its readings files)')
  readability.refuse_judge('readability', config.readability)
  pairs_config = pairs_experiment.get_config('classic')
  pairs_config.seed = config.seed
  images, candidate_pairs = exchange.load_pairs_file(config.candidates_file)
  if len(candidate_pairs) % config.candidates_per_pair:
    raise ConfigError(f'{config.candidates_file} holds {len(candidate_pairs)} candidates, '
                      f'not a multiple of candidates_per_pair={config.candidates_per_pair}')
  pairs_config.candidates = config.candidates_per_pair
  readings = []
  for path in config.readings.split(','):
    shown, answers, instruction = exchange.read_npz(
        pathlib.Path(path), ('images', 'answers', 'instruction'), 'a readings file')
    candidate, view = match_views(shown, images)
    readings.append((path, answers, str(instruction), candidate, view))
    # Every file of a run's readings shows the same candidates: score those.
    images = shown_candidates(shown, candidate, view, images)
  choices = choosers(config, pairs_config, images, candidate_pairs, workspace)
  results: dict[str, Any] = {'candidates_file': str(config.candidates_file),
                             'seed': config.seed, 'instructions': {}}
  for path, answers, instruction, candidate, view in readings:
    read = read_both_ways(majority_answers(answers), candidate, view, candidate_pairs)
    per_pair = read.reshape(-1, config.candidates_per_pair)
    scores = replay({**choices, 'readers': per_pair.argmax(1)}, read,
                    config.candidates_per_pair)
    histogram = pairs_by_candidates_read(read, config.candidates_per_pair)
    held_out = held_out_rater_replay(choices, answers, candidate, view, candidate_pairs,
                                     config.candidates_per_pair)
    results['instructions'][instruction] = {'readings': path, 'raters': len(answers),
                                            'pairs_read': scores,
                                            'pairs_read_by_other_raters': held_out,
                                            'pairs_by_candidates_read': histogram.tolist(),
                                            'candidates_read': per_pair.sum(1).tolist()}
    for chooser, count in scores.items():
      print(f'{name}: {instruction} ({len(answers)} raters, {pathlib.Path(path).name}): '
            f'{chooser} keeps candidates read both ways on {count} pairs')
    for chooser, count in held_out.items():
      print(f'{name}: {instruction}, scored by the raters who did not pick: {chooser} '
            f'keeps candidates read both ways on {count:.1f} pairs')
    print(f'{name}: {instruction}: pairs with 0, 1, … {config.candidates_per_pair} of '
          f'their candidates read both ways: {histogram.tolist()}')
  out = workspace.output_dir(name)
  if io.is_writer():
    io.write_json(out / 'replay.json', results)
    logging.info('Wrote %s.', out / 'replay.json')
