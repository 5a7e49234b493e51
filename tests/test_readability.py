"""The readability model: readings become examples, held-out views measure it, and
`pairs` chooses by it."""

import json
import shutil

import jax
import numpy as np
import pytest
from flax import nnx

from experiments import pairs as pairs_experiment
from experiments import readability as readability_experiment
from flipnum_jax import checkpoints
from flipnum_jax import exchange
from flipnum_jax import generators
from flipnum_jax import io
from flipnum_jax import models
from flipnum_jax import readability
from flipnum_jax import reading_test as reading_lib
from flipnum_jax.errors import ConfigError, DataError
from tests.test_reading_test import fill_template, small_config
from tests.conftest import REPO
from tests.test_run import run_cli


@pytest.fixture(scope='module')
def read_test(tmp_path_factory, mnist_dir):
  """A reading test of 60 'candidates' — 30 real test digits, 30 noise images — and
  three raters who name the upright digits and real controls (the key) and cannot
  tell anything else; exported to a readings file. Returns the file, the test and
  whether each of the file's views is read."""
  folder = tmp_path_factory.mktemp('readings')
  workspace = io.Workspace(folder, str(mnist_dir))
  digits = workspace.mnist.test_images[:30] / 255.0
  noise = np.random.default_rng(1).random((30, 28, 28))
  labels = workspace.mnist.test_labels[:30]
  pairs = np.stack([labels, labels], 1).astype(np.int64)
  pairs = np.concatenate([pairs, np.zeros((30, 2), np.int64)])
  io.write_npz(folder / 'pool.npz', images=np.concatenate([digits, noise]).astype(np.float32),
               pairs=pairs)
  test_dir, test = reading_lib.prepare(small_config(inputs=str(folder / 'pool.npz')),
                                       workspace, 'reading_test')
  readable = (test.source == reading_lib.REAL_CONTROL) | (
      (test.source == 0) & (test.item < 30) & (test.view == 0))
  (test_dir / 'readings').mkdir()
  for rater in ('r1', 'r2', 'r3'):
    (test_dir / 'readings' / f'{rater}.txt').write_text(fill_template(
        test, rater, lambda t: test.digit[t] if readable[t] else '?'))
  readings_file = folder / 'readings.npz'
  readability.export_readings(test_dir, 'confident', readings_file)
  shown = test.source >= 0
  return readings_file, test.digit[shown], readable[shown]


def test_readings_become_one_example_per_answer_with_views_held_out_whole(read_test):
  readings_file, key, readable = read_test
  examples = readability.reading_examples([readings_file], 'confident')
  # The 120 views of the 60 candidates (no controls) × 3 raters.
  assert len(key) == 120 and len(examples.answers) == 3 * 120
  read = readable[examples.views]
  np.testing.assert_array_equal(examples.answers[read], key[examples.views[read]])
  assert np.all(examples.answers[~read] == reading_lib.CANT_TELL)
  held = readability.held_out_views(examples.views, 0.25, seed=0)
  held_views = np.unique(examples.views[held])
  assert len(held_views) == 30
  assert not np.isin(examples.views[~held], held_views).any()  # no view on both sides
  with pytest.raises(DataError, match='holds confident readings, not forced'):
    readability.reading_examples([readings_file], 'forced')


def test_majority_answer_breaks_ties_towards_the_digit():
  examples = readability.Examples(np.zeros((5, 28, 28)), np.array([3, 10, 10, 7, 7]),
                                  np.array([0, 0, 1, 1, 1]))
  views, majority = readability.majority_answers(examples)
  np.testing.assert_array_equal(views, [0, 1])
  np.testing.assert_array_equal(majority, [3, 7])


def test_a_trained_model_agrees_with_readers_on_views_it_never_saw(read_test, mnist_dir):
  readings_file, _, _ = read_test
  config = readability_experiment.get_config('smoke')
  config.readings = str(readings_file)
  config.held_out_fraction = 0.3
  config.model.epochs = 3
  workspace = io.Workspace(readings_file.parent, str(mnist_dir))
  model, metrics = readability.train_readability(config, workspace.mnist)
  # Noise is "can't tell" to every rater, real digits their digit: a model that
  # learned anything beats the best constant answer on the held-out views.
  assert metrics['held_out_majority_agreement'] > metrics['held_out_constant_agreement']
  assert metrics['held_out_majority_agreement'] >= 0.75
  assert metrics['readings']['answers'] == 3 * metrics['readings']['views']


@pytest.mark.parametrize('key, value, message', [
    ('readings', '', 'readings must name readings files'),
    ('model.train_examples', 2048, 'train_examples must be 0'),
    ('model.name', 'judge_reader', 'generator-side'),
    ('model.model.num_classes', 10, 'needs 11 classes'),
    ('held_out_fraction', 1.0, 'held_out_fraction must be in'),
])
def test_bad_readability_configs_are_refused(key, value, message):
  config = readability_experiment.get_config('smoke')
  node = config
  *sections, leaf = key.split('.')
  for section in sections:
    node = node[section]
  node[leaf] = value
  with pytest.raises(ConfigError, match=message):
    readability.check(config)


def test_pairs_chooses_the_candidate_the_readability_model_reads_best(
    read_test, smoke_workdir, tmp_path, mnist_dir):
  # Its own workdir (pairs:smoke's output elsewhere stays the plain choice), with
  # the session's smoke models when another test trained them.
  readings_file, _, _ = read_test
  if (smoke_workdir / 'models').is_dir():
    shutil.copytree(smoke_workdir / 'models', tmp_path / 'models')
  config = pairs_experiment.get_config('smoke')
  config.readability = 'nowhere'
  with pytest.raises(ConfigError, match='no readability model'):  # before any drawing
    generators.generate(config, np.array([[3, 7]]), io.Workspace(tmp_path, str(mnist_dir)))
  trained = run_cli('--experiment=readability:smoke', f'--workdir={tmp_path}',
                    f'--config.readings={readings_file}', env_data_dir=mnist_dir)
  assert trained.returncode == 0, trained.stderr[-3000:]
  assert 'agreement with the raters' in trained.stdout
  chose = run_cli('--experiment=pairs:smoke', f'--workdir={tmp_path}',
                  '--config.readability=readability_smoke', env_data_dir=mnist_dir)
  assert chose.returncode == 0, chose.stderr[-3000:]
  out = tmp_path / 'pairs' / 'smoke'
  chosen, pairs = exchange.load_pairs_file(out / exchange.PAIRS_FILE)
  candidates, candidate_pairs = exchange.load_pairs_file(out / exchange.CANDIDATES_FILE)
  # Recomputed here from the saved model: each pair keeps its best-read candidate.
  reader = readability.load('readability_smoke', io.Workspace(tmp_path))
  probs = readability.view_answer_probs(
      *reader, np.concatenate([candidates, candidates[:, ::-1, ::-1]]))
  index = np.arange(len(candidates))
  read = np.minimum(probs[index, candidate_pairs[:, 0]],
                    probs[len(index) + index, candidate_pairs[:, 1]])
  k = len(candidates) // len(pairs)
  best = np.arange(len(pairs)) * k + read.reshape(-1, k).argmax(1)
  np.testing.assert_array_equal(chosen, candidates[best])
  assert json.loads((tmp_path / 'models/readability_smoke/metrics.json').read_text())[
      'held_out_views'] > 0
  # The same model as a second expert in the guide: the same starting noise, another
  # push, so other candidates.
  guided = run_cli('--experiment=pairs:smoke', f'--workdir={tmp_path}',
                   '--config.guide_reader=readability_smoke', env_data_dir=mnist_dir)
  assert guided.returncode == 0, guided.stderr[-3000:]
  pushed, _ = exchange.load_pairs_file(out / exchange.CANDIDATES_FILE)
  assert pushed.shape == candidates.shape
  assert np.abs(pushed - candidates).max() > 0.05


def test_pairs_reader_guides_with_the_committed_readability_model(smoke_workdir, mnist_dir):
  result = run_cli('--experiment=pairs_reader:smoke', f'--workdir={smoke_workdir}',
                   env_data_dir=mnist_dir)
  assert result.returncode == 0, result.stderr[-3000:]
  # No workdir model of that name: the one in pretrained/ is the second expert.
  assert 'Loaded the readability model readability_forced3 from' in result.stderr
  assert 'pretrained/readability_forced3' in result.stderr
  images, pairs = exchange.load_pairs_file(smoke_workdir / 'pairs_reader/smoke/pairs.npz')
  assert images.shape == (4, 28, 28) and pairs.tolist() == [[3, 7], [3, 9], [6, 7], [6, 9]]


@pytest.mark.parametrize('overrides, message', [
    ({'readability': 'judge_cnn'}, 'generator-side model, not a judge'),
    ({'readability_guides': True}, 'readability_guides needs a readability model'),
    ({'guide_reader': 'judge_cnn'}, 'guide_reader names a generator-side model, not a judge'),
    ({'guide_reader': 'readability_forced3,judge_cnn'}, "not a judge \\('judge_cnn'\\)"),
    ({'guide_reader': 'r', 'readability': 'r', 'readability_guides': True},
     'choose one'),
    ({'guide_reader_weight': 0.0}, 'guide_reader_weight must be finite and > 0'),
    ({'guide_reader_weight': float('nan')}, 'guide_reader_weight must be finite'),
])
def test_pairs_refuses_a_judge_or_guidance_without_a_readability_model(overrides, message):
  config = pairs_experiment.get_config('smoke')
  config.update(overrides)
  with pytest.raises(ConfigError, match=message):
    generators.check(config)


def test_guide_model_multiplies_every_named_reader_under_jit(monkeypatch, tmp_path):
  spec = models.classifier_spec()
  spec.conv_features, spec.hidden, spec.num_classes = (4, 8), 16, 11
  classifier = models.make_classifier(spec, jax.random.key(1))
  readers = {'first': models.make_classifier(spec, jax.random.key(2)),
             'second': models.make_classifier(spec, jax.random.key(3))}
  monkeypatch.setattr(readability, 'load', lambda name, workspace: nnx.split(readers[name]))
  config = pairs_experiment.get_config('smoke')
  config.guide_reader, config.guide_reader_weight = 'first,second', 0.5
  guide = generators.guide_model(classifier, config, io.Workspace(tmp_path))
  images = jax.random.uniform(jax.random.key(4), (5, 28, 28))
  logits = jax.jit(models.apply, static_argnums=0)(*guide, images)
  p = {name: np.asarray(jax.nn.softmax(model(images)), np.float64)
       for name, model in [('classifier', classifier), *readers.items()]}
  # p ∝ p_classifier · p_first^½ · p_second^½, renormalized over the 11 classes.
  expected = p['classifier'] * np.sqrt(p['first'] * p['second'])
  expected /= expected.sum(1, keepdims=True)
  np.testing.assert_allclose(jax.nn.softmax(logits), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('name', ['readability_forced3', 'readability_forced12'])
def test_committed_readability_model_agrees_with_its_readings_as_recorded(name, tmp_path):
  # pairs_reader's second expert (forced3) and its chooser in `pairs_reader:chosen`
  # (forced12) come from pretrained/: the restored weights must be the model whose
  # held-out agreement with the readers was saved beside them.
  folder = checkpoints.PRETRAINED_DIR / name
  metrics = json.loads((folder / 'metrics.json').read_text())
  config = readability_experiment.get_config('forced')
  config.readings = ','.join(str(REPO / f) for f in metrics['readings']['files'])
  examples = readability.reading_examples(readability.check(config), config.instruction)
  held = readability.held_out_views(examples.views, config.held_out_fraction,
                                    config.split_seed)
  recomputed = readability.agreement(*readability.load(name, io.Workspace(tmp_path)),
                                     examples, held)
  assert recomputed['held_out_views'] == metrics['held_out_views']
  assert recomputed['held_out_majority_agreement'] == pytest.approx(
      metrics['held_out_majority_agreement'], abs=2 / metrics['held_out_views'])
  assert recomputed['held_out_majority_agreement'] > 2 * recomputed[
      'held_out_constant_agreement']
