"""The evaluate job: judge pairs files with the panel; write JSON, heat-maps, report.

Writes into `<workdir>/evaluate/`: `evaluation.json`, `<input>/readable.png` per
input, and `report.md` with the tables and pictures.
"""

import pathlib
from typing import Any

import ml_collections
import numpy as np
from absl import logging

from flipnum_jax import data
from flipnum_jax import exchange
from flipnum_jax import io
from flipnum_jax import plots
from flipnum_jax import reading_test as reading_lib
from flipnum_jax.errors import ConfigError
from flipnum_jax.judges import knn
from flipnum_jax.judges import metrics
from flipnum_jax.judges import panel as panel_lib
from flipnum_jax.judges import readers


def reading_test_dir(config: ml_collections.ConfigDict,
                     workspace: io.Workspace) -> pathlib.Path | None:
  """The reading test whose readings to score: `readings` when set, else
  `<workdir>/reading_test` when it holds readings, else none."""
  if config.readings:
    folder = pathlib.Path(config.readings)
    if not (folder / 'readings').is_dir() or not any((folder / 'readings').iterdir()):
      raise ConfigError(f'readings: {folder} holds no readings/ (name the reading test\'s '
                        'folder, e.g. runs/reading_test, after raters have answered)')
    return folder
  default = workspace.output_dir('reading_test')
  return default if (default / 'readings').is_dir() and any(
      (default / 'readings').iterdir()) else None


def input_paths(config: ml_collections.ConfigDict, workspace: io.Workspace,
                test: reading_lib.Test | None
                ) -> tuple[dict[str, pathlib.Path], dict[str, pathlib.Path]]:
  """The pairs files and the plain-samples files to judge. With neither named, the
  reading test's input files (so that the panel stands beside the readers), or with
  no test `<workdir>/pairs/pairs.npz`."""
  default = ''
  if not config.samples:
    default = ','.join(d['path'] for d in test.inputs if pathlib.Path(d['path']).is_file()) \
        if test else str(workspace.output_dir('pairs') / exchange.PAIRS_FILE)
  return (exchange.named_paths(config.inputs or default, 'inputs'),
          exchange.named_paths(config.samples, 'samples'))


def control_inputs(mnist: data.Mnist, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Calibration inputs judged beside every report.

  `control: natural flips` — real test digits that are flip digits by nature (0, 1
  and 8 read as themselves turned, 6 as 9, 9 as 6), 20 of each: a panel that works
  reads most of them. `control: noise` — uniform noise for all 100 pairs: it must
  read almost none.
  """
  noise = np.random.default_rng(seed).random((100, 28, 28)).astype(np.float32)
  return {'control: natural flips': data.natural_flips(mnist),
          'control: noise': (noise, exchange.all_pairs(np.arange(10), np.arange(10)))}


def evaluate_input(panel: panel_lib.Panel, config: ml_collections.ConfigDict,
                   images: np.ndarray, pairs: np.ndarray, path: pathlib.Path | None,
                   mnist: data.Mnist, real_distances: np.ndarray
                   ) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
  """Everything evaluation.json says of one input; also the panel's verdict per
  view (2, N) and the judges' mean min-probability per pair."""
  judges, correct, min_probs = {}, {}, []
  for name, probabilities in panel_lib.view_probabilities(panel, images).items():
    judge_correct = metrics.view_correct(probabilities, pairs)
    judge_min = metrics.view_target_probability(probabilities, pairs).min(0)
    judges[name] = {'test_accuracy': panel.metrics[name]['test_accuracy'],
                    **metrics.rates(judge_correct),
                    'mean_min_prob': float(judge_min.mean())}
    correct[name] = judge_correct
    min_probs.append(judge_min)
  verdict = metrics.panel_correct(correct, config.veto_judge)
  generator = metrics.generator_view(path) if path else None
  panel_rates = metrics.rates(verdict)
  result = {
      'path': str(path) if path else None, 'images_sha256': exchange.images_hash(images),
      'pairs': len(pairs), 'judges': judges,
      'panel': panel_rates, 'majority': metrics.rates(metrics.panel_correct(correct)),
      'generator': generator,
      'gap_both': (generator['both'] - panel_rates['both']) if generator else None,
      'panel_both_ways_pairs': pairs[verdict[0] & verdict[1]].tolist(),
      'frechet': metrics.realism(panel, config.frechet_judge,
                                 metrics.pair_views(images, pairs), mnist,
                                 config.floor_repeats, real_distances, config.seed),
  }
  return result, verdict, np.mean(min_probs, 0)


def evaluate_samples(panel: panel_lib.Panel, config: ml_collections.ConfigDict,
                     images: np.ndarray, labels: np.ndarray, path: pathlib.Path,
                     mnist: data.Mnist, real_distances: np.ndarray) -> dict[str, Any]:
  """What evaluation.json says of a file of plain digits (images and the labels they
  were drawn as): the share each judge and the panel read as the intended digit,
  and the upright view's realism."""
  correct = {name: probabilities.argmax(-1) == labels
             for name, probabilities in panel_lib.probabilities(panel, images).items()}
  return {'path': str(path), 'samples': len(labels),
          'judges': {name: float(c.mean()) for name, c in correct.items()},
          'panel': float(metrics.panel_correct(correct, config.veto_judge).mean()),
          'majority': float(metrics.panel_correct(correct).mean()),
          'frechet': metrics.realism(panel, config.frechet_judge,
                                     {'upright': (images, labels)}, mnist,
                                     config.floor_repeats, real_distances, config.seed)}


def _row(cells: list[Any]) -> str:
  return '| ' + ' | '.join(str(c) for c in cells) + ' |'


def _percent(rate: float | None) -> str:
  """A rate as a whole percentage for the report ('—' when there is none)."""
  return '—' if rate is None else f'{100 * rate:.0f}%'


def samples_table(samples: dict[str, dict[str, Any]], judges: list[str]) -> list[str]:
  """The report's lines on plain digits (none when no samples file was judged)."""
  if not samples:
    return []
  lines = ['## Plain samples', '', 'The share of samples read as the digit they were '
           'drawn as.', '', _row(['input', *judges, 'majority', 'panel', 'Fréchet (floor)']),
           _row(['---'] * (len(judges) + 4))]
  for name, r in samples.items():
    f = r['frechet']
    lines.append(_row([name, *[f"{100 * r['judges'][j]:.1f}%" for j in judges],
                       f"{100 * r['majority']:.1f}%", f"**{100 * r['panel']:.1f}%**",
                       f"{f['upright']:.1f} ({f['upright_floor']:.1f})"]))
  return lines + ['']


def pairs_tables(results: dict[str, dict[str, Any]], judges: list[str],
                 feature_judge: str) -> list[str]:
  """report.md's tables of the pairs inputs: both-ways rates, per view and realism."""
  lines = ['## Both ways', '',
           _row(['input', 'generator', *judges, 'majority', 'panel', 'gap']),
           _row(['---'] * (len(judges) + 5))]
  for name, r in results.items():
    lines.append(_row([name, _percent(r['generator'] and r['generator']['both']),
                       *[_percent(r['judges'][j]['both']) for j in judges],
                       _percent(r['majority']['both']), f"**{_percent(r['panel']['both'])}**",
                       '—' if r['gap_both'] is None else f"{100 * r['gap_both']:+.0f} pts"]))
  lines += ['', '## Panel per view, and realism', '',
            _row(['input', 'upright', 'rotated', 'both', 'Fréchet upright (floor)',
                  'Fréchet rotated (floor)', 'near a real digit (upright / rotated)']),
            _row(['---'] * 7)]
  for name, r in results.items():
    f = r['frechet']
    lines.append(_row([name, _percent(r['panel']['upright']), _percent(r['panel']['rotated']),
                       _percent(r['panel']['both']),
                       f"{f['upright']:.1f} ({f['upright_floor']:.1f})",
                       f"{f['rotated']:.1f} ({f['rotated_floor']:.1f})",
                       f"{_percent(f['upright_near_real'])} / {_percent(f['rotated_near_real'])}"]))
  return lines + ['', f'Fréchet distances use the penultimate features of `{feature_judge}` '
                  'against class-matched real test digits; the floor is real vs real on '
                  'equal sample sizes. "Near a real digit": the share of images whose '
                  'nearest training digit is no farther than the 99th percentile of real '
                  'test digits\' distances.', '']


def beside_the_panel(reader_results: dict[str, Any], test: reading_lib.Test,
                     verdicts: dict[str, tuple[str, np.ndarray]]) -> None:
  """Adds, in place, to each reader input the panel's verdict on the same images
  (matched by their hash) and where the two disagree."""
  for scored in reader_results['instructions'].values():
    for described in test.inputs:
      entry = scored['inputs'][described['name']]
      judged = verdicts.get(described['images_sha256'])
      entry['panel'] = None
      if judged:
        judged_name, verdict = judged
        entry['panel'] = {'input': judged_name, 'both': float(np.mean(verdict[0] & verdict[1])),
                          **readers.disagreements(np.array(scored['views'][described['name']]),
                                                  verdict, np.array(described['pairs']))}


def readers_tables(reader_results: dict[str, Any]) -> list[str]:
  """report.md's first section: what the blind readers read, the raters' controls,
  the paired tests, and where readers and the panel disagree."""
  lines = ['## Blind readers', '',
           f"Reading test `{reader_results['test']}` ({reader_results['trials']} views, "
           f"test {reader_results['test_hash'][:16]}). A view is read when more than "
           'half of the unflagged raters answer its digit; a pair is read both ways when '
           'both its views are. Intervals are 95% (Wilson).', '',
           _row(['input', 'instruction', 'raters', 'upright', 'turned', 'both ways',
                 '95% interval', 'panel both ways', "Fleiss' κ"]), _row(['---'] * 9)]
  instructions = reader_results['instructions']
  for instruction, scored in instructions.items():
    kappa = '—' if scored['kappa'] is None else f"{scored['kappa']:.2f}"
    for name, r in scored['inputs'].items():
      low, high = r['both_interval']
      lines.append(_row([name, instruction, f"{len(scored['majority_of'])} of "
                         f"{len(scored['raters'])}", _percent(r['upright']),
                         _percent(r['rotated']), f"**{r['both_count']} of {r['pairs']}**",
                         f'{100 * low:.0f}–{100 * high:.0f}%',
                         _percent(r['panel'] and r['panel']['both']), kappa]))
  input_names = list(next(iter(instructions.values()))['inputs'])
  lines += ['', '### Raters', '',
            f"A rater is flagged, and left out of the majority, who reads under "
            f"{_percent(reader_results['min_real_accuracy'])} of the real digits, calls "
            f"more than {_percent(reader_results['max_catch_digits'])} of the catch trials "
            'digits (noise; under `confident` also two digits drawn over each other, which '
            'under `forced` may fairly look like a digit), or leaves views unanswered.', '',
            _row(['rater', 'instruction', 'form', 'answered', 'real digits',
                  'noise called a digit', 'two digits overlaid called a digit',
                  *[f'{n}: both ways' for n in input_names], 'flagged']),
            _row(['---'] * (len(input_names) + 8))]
  for instruction, scored in instructions.items():
    for rater, r in scored['raters'].items():
      lines.append(_row([rater, instruction, r['form'], r['answered'],
                         _percent(r['real_accuracy']), _percent(r['noise_called_digit']),
                         _percent(r['overlay_called_digit']),
                         *[_percent(i['both']) for i in r['inputs'].values()],
                         '; '.join(r['flags']) or 'no']))
  tests = [(instruction, t) for instruction, scored in instructions.items()
           for t in scored['paired_tests']]
  if tests:
    lines += ['', '### Paired tests (McNemar, exact, on pairs read both ways)', '',
              _row(['instruction', 'first', 'second', 'both', 'first only', 'second only',
                    'neither', 'p']), _row(['---'] * 8)]
    lines += [_row([instruction, t['first'], t['second'], t['both'], t['first_only'],
                    t['second_only'], t['neither'], f"{t['p_value']:.3g}"])
              for instruction, t in tests]
  lines += ['', '### Where readers and the panel disagree', '']
  for instruction, scored in instructions.items():
    for name, r in scored['inputs'].items():
      if not r['panel']:
        lines.append(f'- {name} ({instruction}): the panel did not judge these images.')
        continue
      views = ', '.join(f'{k} {c} of {n}' for k, (c, n) in
                        list(r['panel']['panel_only_views'].items())[:6]) or 'none'
      lines.append(f"- {name} ({instruction}): the panel reads "
                   f"{len(r['panel']['panel_only_pairs'])} pairs both ways that the readers "
                   f"do not, the readers {len(r['panel']['readers_only_pairs'])} that the "
                   f"panel does not. Views the panel reads and the readers do not, most "
                   f"first: {views}.")
  return lines + ['']


def report(reader_results: dict[str, Any] | None, results: dict[str, dict[str, Any]],
           samples: dict[str, dict[str, Any]], judge_metrics: dict[str, dict], veto: str,
           feature_judge: str) -> str:
  """report.md: the blind readers when there are readings, then the panel's tables
  (pairs, then plain samples; either may be absent), the judges, then a heat-map per
  pairs input."""
  judges = list(judge_metrics)
  lines = ['# Evaluation', '', *(readers_tables(reader_results) if reader_results else []),
           '## The judges\' panel', '',
           'Rates are over pairs: a pair reads *both ways* when the judge\'s top class '
           'is a upright and b turned 180°. *Majority*: a strict majority of the '
           'voting judges reads the view. *Panel* (the verdict): the majority does and '
           f'the veto judge ({veto or "none"}) does too. The generator column is the '
           'generating classifier\'s own view (from scores.json) and proves nothing.', '',
           *(pairs_tables(results, judges, feature_judge) if results else []),
           *samples_table(samples, judges),
           '## Judges', '', _row(['judge', 'clean test accuracy', 'note']),
           _row(['---'] * 3)]
  for name, m in judge_metrics.items():
    note = (f"PGD-{m['pgd']['steps']} at ε={m['pgd']['epsilon']} on "
            f"{m['pgd']['examples']} test images: {_percent(m['pgd']['accuracy'])}"
            if 'pgd' in m else '')
    lines.append(_row([name, f"{100 * m['test_accuracy']:.2f}%", note]))
  lines += ['', '## Heat-maps', '']
  read_inputs = [(name, instruction) for instruction, scored in
                 (reader_results or {}).get('instructions', {}).items()
                 for name in scored['inputs']]
  for name in dict.fromkeys([n for n, r in results.items() if r['path']]
                            + [n for n, _ in read_inputs]):
    lines += [f'### {name}', '']
    # <…> keeps a path with spaces one link (CommonMark).
    lines += [f'![{name}: blind readers, {instruction}](<{name}/readers_{instruction}.png>)'
              for n, instruction in read_inputs if n == name]
    if name in results and results[name]['path']:
      lines.append(f'![{name}: panel](<{name}/readable.png>)')
    lines.append('')
  return '\n'.join(lines) + '\n'


def run_experiment(config: ml_collections.ConfigDict, workspace: io.Workspace,
                   name: str) -> None:
  if config.veto_judge and config.veto_judge not in config.judges:
    raise ConfigError(f'veto_judge {config.veto_judge!r} is not one of the judges '
                      f'{sorted(config.judges)}')
  # Read (and so refuse bad files) before any training or writing.
  test_dir = reading_test_dir(config, workspace)
  test = reading_lib.load_test(test_dir) if test_dir else None
  readings = reading_lib.load_readings(test_dir, test) if test else []
  paths, sample_paths = input_paths(config, workspace, test)
  if not paths and not sample_paths:
    raise ConfigError('inputs and samples name no file to judge')
  inputs = {input_name: (*exchange.load_pairs_file(path), path)
            for input_name, path in paths.items()}
  sample_inputs = {sample_name: (*exchange.load_samples_file(path), path)
                   for sample_name, path in sample_paths.items()}
  panel = panel_lib.load_panel(config, workspace)
  mnist = workspace.mnist
  _, real_distances = knn.query(
      panel.neighbours, data.to_float(mnist.test_images[:config.real_distance_examples]), 1)
  out_dir = workspace.output_dir(name)
  if config.controls:
    inputs.update({control: (*arrays, None)
                   for control, arrays in control_inputs(mnist, config.seed).items()})
  results, verdicts = {}, {}
  for input_name, (images, pairs, path) in inputs.items():
    results[input_name], verdict, min_prob = evaluate_input(
        panel, config, images, pairs, path, mnist, real_distances)
    verdicts[results[input_name]['images_sha256']] = (input_name, verdict)
    if path:
      plots.readable_heatmap(out_dir / input_name / 'readable.png', pairs,
                             verdict[0] & verdict[1], min_prob,
                             title=f'{input_name}: panel verdict')
    r = results[input_name]
    logging.info('%s: panel both-ways %.2f, generator %s.', input_name,
                 r['panel']['both'], r['generator'] and f"{r['generator']['both']:.2f}")
  samples = {sample_name: evaluate_samples(panel, config, images, labels, path, mnist,
                                           real_distances)
             for sample_name, (images, labels, path) in sample_inputs.items()}
  reader_results = None
  if readings:
    reader_results = readers.score(readings, test, config.min_real_accuracy,
                                   config.max_catch_digits)
    reader_results['test'] = str(test_dir)
    beside_the_panel(reader_results, test, verdicts)
    for instruction, scored in reader_results['instructions'].items():
      for described in test.inputs:
        r = scored['inputs'][described['name']]
        views = np.array(scored['views'][described['name']])
        if r['raters_both_share'] is not None:
          plots.readable_heatmap(
              out_dir / described['name'] / f'readers_{instruction}.png',
              np.array(described['pairs']), views[0] & views[1],
              np.array(r['raters_both_share']),
              title=f"{described['name']}: blind readers, {instruction}",
              value_label='share of raters reading it both ways',
              reader=f"the majority of {len(scored['majority_of'])} raters")
  io.write_json(out_dir / 'evaluation.json', {
      'readers': reader_results, 'inputs': results, 'samples': samples,
      'judges': {j: m for j, m in panel.metrics.items()}})
  io.atomic_write(out_dir / 'report.md',
                  report(reader_results, results, samples, panel.metrics, config.veto_judge,
                         config.frechet_judge).encode())
  for instruction, scored in (reader_results or {}).get('instructions', {}).items():
    for input_name, r in scored['inputs'].items():
      print(f"{input_name}: blind readers ({instruction}, majority of "
            f"{len(scored['majority_of'])}) read {r['both_count']} of {r['pairs']} pairs "
            f"both ways")
  for input_name, r in results.items():
    print(f"{input_name}: panel reads {r['panel']['both']:.0%} of {r['pairs']} pairs both "
          f"ways (generator: {r['generator']['both']:.0%})" if r['generator'] else
          f"{input_name}: panel reads {r['panel']['both']:.0%} of {r['pairs']} pairs both ways")
  for sample_name, r in samples.items():
    print(f"{sample_name}: panel reads {r['panel']:.1%} of {r['samples']} plain samples "
          f"as their digit; Fréchet {r['frechet']['upright']:.0f} (floor "
          f"{r['frechet']['upright_floor']:.0f})")
  print(f'report: {out_dir / "report.md"}')
