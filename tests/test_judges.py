"""The judge panel: its parts, its independence from generators, and evidence that
it tells readable flip digits from noise and from fooling images."""

import ast
import json
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from experiments import evaluate as evaluate_experiment
from experiments import train as train_experiment
from flipnum_jax import data
from flipnum_jax import exchange
from flipnum_jax import io
from flipnum_jax import objectives
from flipnum_jax import reading_test as reading_lib
from flipnum_jax import train
from flipnum_jax.errors import ConfigError, DataError
from flipnum_jax.generators import ascent
from flipnum_jax.judges import evaluate
from flipnum_jax.judges import frechet
from flipnum_jax.judges import knn
from flipnum_jax.judges import metrics
from flipnum_jax.judges import panel as panel_lib
from tests.conftest import REPO
from tests.test_run import assert_one_line_error, run_cli


def test_frechet_distance_closed_forms():
  rng = np.random.default_rng(0)
  a = rng.normal(size=(4000, 3))
  assert frechet.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
  # Same covariance, shifted mean: the distance is the squared shift.
  assert frechet.frechet_distance(a, a + [1.0, 2.0, 0.0]) == pytest.approx(5.0, rel=1e-6)
  # One dimension: (μ1 − μ2)² + (σ1 − σ2)².
  x, y = rng.normal(0, 1, (20000, 1)), rng.normal(3, 2, (20000, 1))
  expected = (x.mean() - y.mean()) ** 2 + (x.std(ddof=1) - y.std(ddof=1)) ** 2
  assert frechet.frechet_distance(x, y) == pytest.approx(expected, rel=1e-6)


def test_panel_majority_needs_more_than_half_and_the_veto_judge_only_vetoes():
  votes = {'a': np.array([[1, 1, 0, 1]], bool), 'b': np.array([[1, 0, 0, 1]], bool),
           'c': np.array([[1, 1, 0, 0]], bool), 'd': np.array([[0, 1, 1, 0]], bool)}
  np.testing.assert_array_equal(metrics.panel_correct(votes), [[True, True, False, False]])
  # A fifth judge that reads everything would tip 2-of-4 into 3-of-5 if it voted.
  votes['veto'] = np.array([[0, 1, 1, 1]], bool)
  np.testing.assert_array_equal(metrics.panel_correct(votes, 'veto'),
                                [[False, True, False, False]])


@pytest.fixture(scope='module')
def mnist(mnist_dir):
  return data.load_mnist(str(mnist_dir))


def test_knn_reads_real_digits_and_finds_noise_far_from_them(mnist):
  reference = knn.from_mnist(mnist, 5000)
  test = data.to_float(mnist.test_images[:300])
  probabilities, real_distances = knn.query(reference, test, k=5)
  assert np.mean(probabilities.argmax(1) == mnist.test_labels[:300]) > 0.9
  np.testing.assert_allclose(probabilities.sum(1), 1.0)
  noise = np.random.default_rng(0).random((50, 28, 28)).astype(np.float32)
  _, noise_distances = knn.query(reference, noise, k=5)
  assert noise_distances.min() > 1.5 * np.percentile(real_distances, 99)


@pytest.mark.parametrize('arrays, message', [
    ({'images': np.zeros((4, 28, 28), np.float32)}, "lacks the key"),
    ({'images': np.zeros((4, 28, 27), np.float32), 'pairs': np.zeros((4, 2), int)},
     'shape'),
    ({'images': np.full((4, 28, 28), 2.0, np.float32), 'pairs': np.zeros((4, 2), int)},
     r'\[0, 1\]'),
    ({'images': np.zeros((4, 28, 28), np.float32), 'pairs': np.full((4, 2), 12)},
     'digits 0–9'),
    ({'images': np.zeros((4, 28, 28), np.float32), 'pairs': np.zeros((3, 2), int)},
     'pairs must be integers'),
])
def test_bad_pairs_files_are_refused(tmp_path, arrays, message):
  path = tmp_path / 'pairs.npz'
  np.savez(path, **arrays)
  with pytest.raises(DataError, match=message):
    exchange.load_pairs_file(path)
  path.write_bytes(b'not an npz')
  with pytest.raises(DataError, match='not a readable'):
    exchange.load_pairs_file(path)


def _imports(path: pathlib.Path) -> set[str]:
  names = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      names.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      names.add(node.module or '')
      names.update(f'{node.module}.{alias.name}' for alias in node.names)
  return names


def test_no_generator_imports_the_judges():
  judges_dir = REPO / 'flipnum_jax' / 'judges'
  sources = [p for p in (REPO / 'flipnum_jax').rglob('*.py') if judges_dir not in p.parents]
  sources += list((REPO / 'experiments').glob('*.py'))
  sources.remove(REPO / 'experiments' / 'evaluate.py')  # the judges' own config
  offenders = [str(p.relative_to(REPO)) for p in sources
               if any(name.startswith('flipnum_jax.judges') for name in _imports(p))]
  assert not offenders, offenders


def test_generators_may_not_load_a_judge(tmp_path):
  config = train_experiment.classifier_config('smoke')
  config.name = 'judge_mlp'
  with pytest.raises(ConfigError, match='reserved for judges'):
    train.get_classifier(config, io.Workspace(tmp_path))
  result = run_cli('--experiment=blog_pairs:smoke', '--config.classifier.name=judge_cnn',
                   f'--workdir={tmp_path}')
  assert_one_line_error(result, 'reserved for judges')


@pytest.fixture(scope='module')
def smoke_panel(tmp_path_factory, mnist_dir):
  workdir = tmp_path_factory.mktemp('judges')
  config = evaluate_experiment.get_config('smoke')
  return workdir, config, panel_lib.load_panel(config, io.Workspace(workdir, str(mnist_dir)))


def test_realism_of_more_samples_of_a_digit_than_half_the_test_set_holds(smoke_panel, mnist):
  # 600 fives: the floor's two disjoint real samples cannot both have 600 (the test
  # set holds 892 fives); realism scores 446 of them (it raised ValueError).
  _, config, panel = smoke_panel
  fives = data.to_float(mnist.test_images[mnist.test_labels == 5][:600])
  result = metrics.realism(panel, config.frechet_judge, {'upright': (fives, np.full(600, 5))},
                           mnist, 1, np.ones(10), 0)
  assert result['samples'] == 600 and result['upright_frechet_samples'] == 892 // 2
  assert np.isfinite(result['upright']) and np.isfinite(result['upright_floor'])
  # Fewer than half: every image is scored, as before.
  few = metrics.realism(panel, config.frechet_judge, {'upright': (fives[:50], np.full(50, 5))},
                        mnist, 1, np.ones(10), 0)
  assert few['upright_frechet_samples'] == 50


def test_the_generator_is_counted_as_the_judges_are_by_its_top_class(tmp_path):
  # A top class at p = 0.4 (the rest spread thin) reads the digit, as for the judges;
  # p > ½ was the old, stricter criterion, so the gap compared two different things.
  scores = [{'upright': 3, 'rotated': 7, 'p_upright': 0.4, 'p_rotated': 0.9, 'min': 0.4,
             'reads_upright': True, 'reads_rotated': True},
            {'upright': 6, 'rotated': 9, 'p_upright': 0.45, 'p_rotated': 0.2, 'min': 0.2,
             'reads_upright': False, 'reads_rotated': False}]
  io.write_json(tmp_path / 'scores.json', {'pairs': scores})
  view = metrics.generator_view(tmp_path / 'pairs.npz')
  assert (view['upright'], view['rotated'], view['both']) == (0.5, 0.5, 0.5)
  assert view['mean_min_prob'] == pytest.approx(0.3)
  # An older scores.json, without the top-class record: no generator view at all.
  for p in scores:
    del p['reads_upright'], p['reads_rotated']
  io.write_json(tmp_path / 'scores.json', {'pairs': scores})
  assert metrics.generator_view(tmp_path / 'pairs.npz') is None


def _panel_both(panel, images, pairs):
  votes = {name: metrics.view_correct(p, pairs)
           for name, p in panel_lib.view_probabilities(panel, images).items()}
  verdict = metrics.panel_correct(votes, 'judge_one_digit')
  return float(np.mean(verdict[0] & verdict[1]))


def test_panel_reads_natural_flips_but_not_noise_nor_fooling_images(
    smoke_panel, mnist, mnist_dir, tmp_path):
  workdir, config, panel = smoke_panel
  assert set(panel.metrics) == {'judge_mlp', 'judge_cnn', 'judge_robust', 'judge_one_digit',
                                'knn'}
  assert 'pgd' in panel.metrics['judge_robust']

  # Real digits read upright; those that are flip digits by nature (0, 1, 8 read as
  # themselves turned, 6 as 9 and 9 as 6) mostly read both ways; noise does not.
  real = data.to_float(mnist.test_images[1000:1100])
  real_pairs = np.stack([mnist.test_labels[1000:1100]] * 2, 1)
  votes = {name: metrics.view_correct(p, real_pairs)[0]
           for name, p in panel_lib.view_probabilities(panel, real).items()}
  assert metrics.panel_correct(votes, 'judge_one_digit').mean() >= 0.75  # smoke: 1 epoch
  controls = evaluate.control_inputs(mnist, seed=1)
  natural = _panel_both(panel, *controls['control: natural flips'])
  assert natural >= 0.4
  noise, all_pairs = controls['control: noise']
  assert _panel_both(panel, noise, all_pairs) <= 0.1

  # Fooling images: ascent from noise against a generating classifier.
  generator, _ = train.get_classifier(train_experiment.classifier_config('smoke'),
                                      io.Workspace(tmp_path, str(mnist_dir)))
  graphdef, params = nnx.split(generator)
  fooling, _ = ascent.ascend(graphdef, params, jnp.asarray(noise), jnp.asarray(all_pairs),
                             jax.random.split(jax.random.key(0), len(noise)),
                             objective=objectives.FlipObjective(), optimizer=optax.adam(0.05),
                             steps=100)
  probs = jnp.exp(jax.vmap(objectives.view_log_probs, in_axes=(None, None, 0))(
      graphdef, params, fooling))
  generator_both = np.mean((probs[:, 0].argmax(-1) == all_pairs[:, 0])
                           & (probs[:, 1].argmax(-1) == all_pairs[:, 1]))
  assert generator_both >= 0.9
  assert _panel_both(panel, np.asarray(fooling), all_pairs) <= min(0.2, natural / 2)


def test_generate_then_evaluate_cli_writes_json_heatmap_and_report(smoke_panel, mnist_dir, tmp_path):
  workdir, _, _ = smoke_panel
  # Generate the input the way run.py does, and check that generating loaded no
  # judge code (so nothing generated can have been tuned against the judges).
  script = (
      'import sys; from flipnum_jax import runner; '
      "name, config = runner.load_config('blog_pairs:smoke'); "
      f"runner.run(name, config, {str(workdir)!r}, {str(mnist_dir)!r}); "
      "print('JUDGES_LOADED', any(m.startswith('flipnum_jax.judges') for m in sys.modules))")
  result = subprocess.run([sys.executable, '-c', script], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert 'JUDGES_LOADED False' in result.stdout
  inputs = f'{workdir}/blog_pairs/pairs.npz'
  # Real test digits as a file of plain samples: the panel must read them.
  mnist = data.load_mnist(mnist_dir)
  samples = tmp_path / 'real_digits' / 'samples.npz'
  samples.parent.mkdir()
  np.savez(samples, images=data.to_float(mnist.test_images[:200]),
           labels=mnist.test_labels[:200].astype(np.int64))
  result = run_cli('--experiment=evaluate:smoke', f'--config.inputs={inputs},{inputs}',
                   f'--config.samples={samples}', f'--workdir={workdir}',
                   env_data_dir=mnist_dir)
  assert result.returncode == 0, result.stderr[-2000:]
  out = workdir / 'evaluate' / 'smoke'
  evaluation = json.loads((out / 'evaluation.json').read_text())
  assert list(evaluation['inputs']) == ['blog_pairs', "blog_pairs'", 'control: natural flips',
                                        'control: noise']
  entry = evaluation['inputs']['blog_pairs']
  for judge in ('judge_mlp', 'judge_cnn', 'judge_robust', 'judge_one_digit', 'knn'):
    assert set(entry['judges'][judge]) == {'test_accuracy', 'upright', 'rotated', 'both',
                                           'mean_min_prob'}
  assert set(entry['panel']) == {'upright', 'rotated', 'both'}
  # The generator's column is scores.json's own view, not a judge's.
  scores = exchange.read_scores(workdir / 'blog_pairs' / exchange.SCORES_FILE)
  assert entry['generator']['mean_min_prob'] == pytest.approx(scores['mean_min_confidence'])
  assert entry['generator']['both'] == np.mean(
      [p['reads_upright'] and p['reads_rotated'] for p in scores['pairs']])
  for key in ('upright', 'rotated', 'upright_floor', 'rotated_floor'):
    assert np.isfinite(entry['frechet'][key]) and entry['frechet'][key] >= 0
  assert (out / 'blog_pairs' / 'readable.png').read_bytes().startswith(b'\x89PNG')
  real_digits = evaluation['samples']['real_digits']
  assert real_digits['samples'] == 200 and real_digits['panel'] >= 0.75
  assert set(real_digits['judges']) == {'judge_mlp', 'judge_cnn', 'judge_robust',
                                        'judge_one_digit', 'knn'}
  assert 0 <= real_digits['frechet']['upright'] < entry['frechet']['upright']
  assert 'rotated' not in real_digits['frechet']
  report = (out / 'report.md').read_text()
  assert '| blog_pairs |' in report and 'blog_pairs/readable.png' in report
  assert '## Plain samples' in report and '| real_digits |' in report

  # Plain samples alone (no pairs input, no controls): a report without pairs tables.
  result = run_cli('--experiment=evaluate:smoke', f'--config.samples={samples}',
                   '--config.controls=False', f'--workdir={workdir}', env_data_dir=mnist_dir)
  assert result.returncode == 0, result.stderr[-2000:]
  assert json.loads((out / 'evaluation.json').read_text())['inputs'] == {}
  report = (out / 'report.md').read_text()
  assert '| real_digits |' in report and '## Both ways' not in report

  missing = run_cli('--experiment=evaluate:smoke', f'--config.inputs={tmp_path}/none.npz',
                    f'--workdir={tmp_path}')
  assert_one_line_error(missing, 'does not exist')
  np.savez(tmp_path / 'bad.npz', images=np.zeros((3, 28, 28), np.float32))
  bad = run_cli('--experiment=evaluate:smoke', f'--config.inputs={tmp_path}/bad.npz',
                f'--workdir={tmp_path}')
  assert_one_line_error(bad, 'lacks the key')
  bad = run_cli('--experiment=evaluate:smoke', f'--config.samples={tmp_path}/bad.npz',
                f'--workdir={tmp_path}')
  assert_one_line_error(bad, "lacks the key(s) ['labels'] of a samples file")


def test_evaluate_leads_with_the_blind_readers_beside_the_panel(smoke_panel, mnist_dir, tmp_path):
  workdir, _, _ = smoke_panel
  images = np.random.default_rng(3).random((4, 28, 28)).astype(np.float32)
  pairs = np.array([[3, 7], [6, 9], [0, 0], [2, 5]])
  io.write_npz(tmp_path / 'mine' / 'pairs.npz', images=images, pairs=pairs)
  result = run_cli('--experiment=reading_test:smoke', f'--workdir={tmp_path}',
                   f'--config.inputs={tmp_path}/mine/pairs.npz', '--config.format=sheets',
                   '--config.raters=r0,r1,r2', env_data_dir=mnist_dir)
  assert result.returncode == 0, result.stderr[-2000:]
  test_dir = tmp_path / 'reading_test' / 'smoke'
  test = reading_lib.load_test(test_dir)
  # Three raters answer every view with its digit ('?' on catch trials), except:
  # r0 and r1 miss 3 upright; r2 misses 7 turned; r2 also calls noise a 4.
  (test_dir / 'readings').mkdir()
  mine = {(v, i): t for t, (s, i, v) in
          enumerate(zip(test.source, test.item, test.view)) if s == 0}
  misses = {'r0': {mine[0, 0]}, 'r1': {mine[0, 0]}, 'r2': {mine[1, 0]}}
  catch = int(np.flatnonzero(test.source == reading_lib.NOISE)[0])
  for rater in ('r0', 'r1', 'r2'):
    header = (test_dir / 'sheets' / rater / 'answers.txt').read_text().splitlines()[:4]
    order = reading_lib.rater_order(test, rater)
    def answer(t):
      if t in misses[rater]:
        return '?'
      if rater == 'r2' and t == catch:
        return '4'
      return '?' if test.digit[t] < 0 else str(test.digit[t])
    (test_dir / 'readings' / f'{rater}.txt').write_text(
        '\n'.join(header + [f'{n}: {answer(t)}' for n, t in enumerate(order, 1)]) + '\n')
  result = run_cli('--experiment=evaluate:smoke', f'--workdir={workdir}',
                   f'--config.readings={test_dir}', env_data_dir=mnist_dir)
  assert result.returncode == 0, result.stderr[-2000:]
  evaluation = json.loads((workdir / 'evaluate' / 'smoke' / 'evaluation.json').read_text())
  # With readings and no inputs named, the panel judged the test's own input file.
  assert set(evaluation['inputs']) == {'mine', 'control: natural flips', 'control: noise'}
  forced = evaluation['readers']['instructions']['forced']
  assert forced['majority_of'] == ['r0', 'r1', 'r2']
  assert forced['raters']['r2']['catch_called_digit'] == pytest.approx(1 / 2)  # 2 noise
  assert forced['raters']['r2']['noise_called_digit'] == pytest.approx(1 / 2)
  read = forced['inputs']['mine']
  # 3 upright is missed by 2 of 3 (no majority); 7 turned by 1 of 3 (still read).
  assert read['both_ways_pairs'] == [[6, 9], [0, 0], [2, 5]]
  assert read['upright'] == 0.75 and read['rotated'] == 1.0
  assert forced['raters']['r2']['inputs']['mine']['both'] == 0.75
  flips = forced['inputs']['control: natural flips']
  assert flips['both_count'] == 100
  # The panel's verdict on the same images (matched by hash) stands beside them.
  assert flips['panel']['input'] == 'control: natural flips'
  assert flips['panel']['both'] == evaluation['inputs']['control: natural flips']['panel']['both']
  assert read['panel']['input'] == 'mine'
  report = (workdir / 'evaluate' / 'smoke' / 'report.md').read_text()
  assert report.index('## Blind readers') < report.index('## Both ways')
  assert '| mine | forced | 3 of 3 | 75% | 100% | **3 of 4** |' in report
  assert "Where readers and the panel disagree" in report
  assert '(<mine/readers_forced.png>)' in report
  assert (workdir / 'evaluate' / 'smoke' / 'mine' / 'readers_forced.png').read_bytes().startswith(b'\x89PNG')
  assert 'blind readers (forced, majority of 3) read 3 of 4 pairs both ways' in result.stdout
