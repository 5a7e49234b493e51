"""The pairs job: one image per (a, b) that reads a upright and b turned 180°, by
the generator the config names (see `generators`).

Writes, into `<workdir>/<experiment>/`: `pairs.npz` and `scores.json` (the exchange
formats), `grid.png` and `grid_rotated.png`, and every candidate in `candidates.npz`
(each pair's consecutive, a-major) and `candidates.png` (the first round's K per pair).
"""

from typing import Any, Sequence

import ml_collections
import numpy as np
from absl import logging

from flipnum_jax import data
from flipnum_jax import exchange
from flipnum_jax import generators
from flipnum_jax import io
from flipnum_jax import plots
from flipnum_jax.errors import ConfigError


def check_digits(name: str, digits: Sequence[int]) -> np.ndarray:
  """`digits` as an int array, or a ConfigError if any is not one of 0–9."""
  values = list(digits) if isinstance(digits, (tuple, list)) else [digits]
  if not values or len(set(values)) != len(values) or any(
      not isinstance(d, int) or isinstance(d, bool) or not 0 <= d <= 9 for d in values):
    raise ConfigError(f'{name} must be distinct digits 0–9, not {digits!r}')
  return np.array(values, np.int32)


def write_outputs(out_dir, title: str, images: np.ndarray, pairs: np.ndarray,
                  upright: np.ndarray, rotated: np.ndarray, summary: dict[str, Any],
                  mnist: data.Mnist) -> None:
  """Writes pairs.npz, scores.json, grid.png and grid_rotated.png."""
  exchange.write_pairs_file(out_dir / exchange.PAIRS_FILE, images, pairs)
  minimum = np.array([p['min'] for p in summary['pairs']])
  guides = dict(upright_guides=data.first_test_examples(mnist, upright),
                rotated_guides=data.first_test_examples(mnist, rotated))
  title = f'{title} — mean min confidence {summary["mean_min_confidence"]:.3f}'
  plots.pair_grid(out_dir / 'grid.png', images, upright, rotated, minimum,
                  title=title, **guides)
  plots.pair_grid(out_dir / 'grid_rotated.png', images, upright, rotated, minimum,
                  title=title, turned=True, **guides)
  exchange.write_scores(out_dir / exchange.SCORES_FILE, summary)


def run_experiment(config: ml_collections.ConfigDict, workspace: io.Workspace,
                   name: str) -> None:
  """The pairs job: one image per (a, b) for every upright and rotated digit."""
  upright = check_digits('upright_digits', config.upright_digits)
  rotated = check_digits('rotated_digits', config.rotated_digits)
  pairs = exchange.all_pairs(upright, rotated)
  generated = generators.generate(config, pairs, workspace)
  first_round = generated.candidates[generated.first_round]
  spread = generators.candidate_spread(first_round, config.candidates)
  summary = exchange.scores_summary(pairs, generated.p_upright, generated.p_rotated,
                                    generated.reads, generated.timing, spread)
  out_dir = workspace.output_dir(name)
  write_outputs(out_dir, name, generated.images, pairs, upright, rotated, summary,
                workspace.mnist)
  exchange.write_pairs_file(out_dir / exchange.CANDIDATES_FILE, generated.candidates,
                            generated.candidate_pairs)
  second_round = len(generated.candidates) - len(first_round)
  plots.candidate_grid(
      out_dir / 'candidates.png', first_round, upright, rotated, spread,
      f'{name}: every {"first-round " if second_round else ""}candidate, upright '
      f'(rows: a; columns: b) — under each pair its candidate spread (mean '
      f'{summary["mean_candidate_spread"]:.3f})'
      + (f'; {second_round} more in candidates.npz' if second_round else ''))
  if not io.is_writer():  # in a run over several processes, process 0 writes
    return
  logging.info('Wrote %s: mean min confidence %.3f, worst pair %s, mean candidate '
               'spread %.3f.', out_dir, summary['mean_min_confidence'],
               summary['worst_pair'], summary['mean_candidate_spread'])
  more = (f' + {second_round} for the {config.hard_pairs} pairs rated worst'
          if second_round else '')
  print(f'{name}: {len(pairs)} pairs × {config.candidates} candidates{more}, generator mean '
        f'min confidence {summary["mean_min_confidence"]:.3f} (worst '
        f'{summary["worst_pair"]}); outputs in {out_dir}')
