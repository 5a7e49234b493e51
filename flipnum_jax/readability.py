"""A generator-side model of what blind readers read (lever 6 of the readers' issue).

The only signal known to track blind readers is readers. Readings taken blind on
candidates that are never reported (`candidates.npz` of `pairs` runs with other
seeds, read with the kit's reading test) become training examples: each rater's
answer to each view, the view as shown (a digit, or "can't tell" as class 10).
`train_readability` fits the kit's classifier kind on them beside MNIST digits
(extra positives, so that the model knows every digit's shapes), holding out a share
of the views, never seen in training, on which it reports its agreement with the
readers. `pairs --config.readability=NAME` then keeps, of each pair's candidates, the
one whose weaker view the model most expects a reader to name as its target
(`generators.generate`). A generator-side model: it never judges, and readings of
images that are reported must never train it.
"""

import pathlib
from typing import Any, NamedTuple

import jax
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from flipnum_jax import checkpoints
from flipnum_jax import data
from flipnum_jax import exchange
from flipnum_jax import io
from flipnum_jax import models
from flipnum_jax import reading_test
from flipnum_jax import train
from flipnum_jax.errors import ConfigError, DataError


class Examples(NamedTuple):
  """One example per (rater, view): the view as shown (E, 28, 28) in [0, 1], the
  rater's answer (E,) (0–9, or `reading_test.CANT_TELL`) and the view's id (E,),
  unique across readings files, by which views are held out whole."""
  images: np.ndarray
  answers: np.ndarray
  views: np.ndarray


def export_readings(test_dir: pathlib.Path, instruction: str,
                    path: pathlib.Path) -> None:
  """Writes the readings file `path` from the reading test in `test_dir`: the views
  of its inputs as shown (the controls, real MNIST digits, are left out, so the file
  holds no MNIST and can be committed) and every `instruction` rater's answers."""
  test = reading_test.load_test(test_dir)
  readings = [r for r in reading_test.load_readings(test_dir, test)
              if r.instruction == instruction]
  if not readings:
    raise DataError(f'{test_dir} has no {instruction} readings')
  shown = test.source >= 0
  io.write_npz(path, images=test.images[shown],
               answers=np.stack([r.answers[shown] for r in readings]),
               instruction=np.array(instruction), test=np.array(test.hash))


def reading_examples(paths: list[pathlib.Path], instruction: str) -> Examples:
  """Every answer in the readings files `paths` (`export_readings`), which must all
  hold `instruction` readings."""
  images, answers, views, offset = [], [], [], 0
  for path in paths:
    shown, given, recorded = exchange.read_npz(path, ('images', 'answers', 'instruction'),
                                               'a readings file')
    if str(recorded) != instruction:
      raise DataError(f'{path} holds {recorded} readings, not {instruction}')
    for rater_answers in given:
      answered = np.flatnonzero(rater_answers != reading_test.UNANSWERED)
      images.append(shown[answered])
      answers.append(rater_answers[answered])
      views.append(offset + answered)
    offset += len(shown)
  return Examples(np.concatenate(images).astype(np.float32),
                  np.concatenate(answers).astype(np.int32), np.concatenate(views))


def held_out_views(views: np.ndarray, fraction: float, seed: int) -> np.ndarray:
  """(E,) whether each example's view is held out: `fraction` of the distinct
  views, drawn with `seed`, all of a view's answers together."""
  distinct = np.unique(views)
  rng = np.random.default_rng(seed)
  held = rng.permutation(distinct)[:int(round(fraction * len(distinct)))]
  return np.isin(views, held)


def majority_answers(examples: Examples) -> tuple[np.ndarray, np.ndarray]:
  """The distinct views' ids and each one's most frequent answer (ties: the lower
  code, so a tie between a digit and "can't tell" goes to the digit)."""
  distinct, index = np.unique(examples.views, return_inverse=True)
  counts = np.zeros((len(distinct), reading_test.CANT_TELL + 1), np.int32)
  np.add.at(counts, (index, examples.answers), 1)
  return distinct, counts.argmax(1)


def _to_uint8(images: np.ndarray) -> np.ndarray:
  return np.round(np.clip(images, 0.0, 1.0) * 255.0).astype(np.uint8)


def training_set(mnist: data.Mnist, examples: Examples, held: np.ndarray,
                 mnist_examples: int, reading_repeats: int) -> data.Mnist:
  """MNIST's first `mnist_examples` training digits and the readings not held out,
  each repeated `reading_repeats` times (there are far fewer of them), as training
  examples; the held-out readings as the test set, so that the classifier kind's
  test accuracy is the agreement with readers on views it never saw."""
  kept = ~held
  train_images = np.concatenate(
      [mnist.train_images[:mnist_examples]]
      + [_to_uint8(examples.images[kept])] * reading_repeats)
  train_labels = np.concatenate(
      [mnist.train_labels[:mnist_examples]] + [examples.answers[kept]] * reading_repeats)
  return data.Mnist(train_images, train_labels.astype(np.int32),
                    _to_uint8(examples.images[held]), examples.answers[held])


def view_answer_probs(graphdef: nnx.GraphDef, params: nnx.State,
                      images: np.ndarray) -> np.ndarray:
  """(N, 11): the model's probability that a reader answers each digit, or can't
  tell, for each view as shown."""
  return np.asarray(jax.nn.softmax(train.predict(graphdef, params, images), -1))


def agreement(graphdef: nnx.GraphDef, params: nnx.State, examples: Examples,
              held: np.ndarray) -> dict[str, Any]:
  """On the held-out views: how often the model's top answer is the raters'
  majority answer, against the best constant answer (the majority's most frequent
  one), and the share of views the majority reads as a digit at all."""
  held_examples = Examples(*(a[held] for a in examples))
  distinct, majority = majority_answers(held_examples)
  first = np.array([np.flatnonzero(held_examples.views == v)[0] for v in distinct])
  predicted = view_answer_probs(graphdef, params, held_examples.images[first]).argmax(1)
  constant = np.bincount(majority, minlength=reading_test.CANT_TELL + 1).max()
  return {'held_out_views': int(len(distinct)),
          'held_out_majority_agreement': float(np.mean(predicted == majority)),
          'held_out_constant_agreement': float(constant / len(distinct)),
          'held_out_read_as_digit': float(np.mean(majority != reading_test.CANT_TELL))}


def refuse_judge(setting: str, name: str) -> None:
  """A ConfigError if the readability model `name`, given to guide or choose by the
  config setting `setting`, is a judge's: only generator-side models guide or
  choose."""
  if name.startswith(train.JUDGE_PREFIX):
    raise ConfigError(f'{setting} names a generator-side model, not a judge ({name!r})')


def check(config: ml_collections.ConfigDict) -> list[pathlib.Path]:
  """The readings files of a readability config, or a ConfigError."""
  files = [pathlib.Path(p) for p in str(config.readings).split(',') if p]
  if not files:
    raise ConfigError('readings must name readings files (comma-separated .npz)')
  if config.model.name.startswith(train.JUDGE_PREFIX):
    raise ConfigError(f'a readability model is generator-side: {config.model.name!r} '
                      f'may not start with {train.JUDGE_PREFIX!r}')
  if config.model.model.num_classes != reading_test.CANT_TELL + 1:
    raise ConfigError('the readability model needs 11 classes (ten digits and "can\'t '
                      f'tell"), not {config.model.model.num_classes}')
  if config.model.train_examples:
    raise ConfigError('model.train_examples must be 0 for a readability model (it would '
                      'cut the readings off; mnist_examples sets the MNIST share)')
  if not 0.0 < config.held_out_fraction < 1.0:
    raise ConfigError(f'held_out_fraction must be in (0, 1), not {config.held_out_fraction}')
  reading_test.check_instruction(config.instruction)
  return files


def train_readability(config: ml_collections.ConfigDict,
                      mnist: data.Mnist) -> tuple[nnx.Module, dict[str, Any]]:
  """The readability model config describes, trained, with its metrics."""
  files = check(config)
  examples = reading_examples(files, config.instruction)
  held = held_out_views(examples.views, config.held_out_fraction, config.split_seed)
  dataset = training_set(mnist, examples, held, config.mnist_examples,
                         config.reading_repeats)
  model, metrics = train.fit(train.KINDS['classifier'], config.model, dataset)
  metrics['held_out_rater_agreement'] = metrics.pop('test_accuracy')
  metrics.update(agreement(*nnx.split(model), examples, held))
  metrics['readings'] = {'answers': int(len(examples.answers)),
                         'views': int(len(np.unique(examples.views))),
                         'files': [str(f) for f in files],
                         'instruction': config.instruction}
  return model, metrics


def load(name: str, workspace: io.Workspace) -> tuple[nnx.GraphDef, nnx.State]:
  """The trained readability model `name` of the workspace, else the committed one
  of that name in `pretrained/`, or a ConfigError saying how to train it."""
  folder = workspace.model_dir(name)
  saved = checkpoints.saved_config(folder)
  if saved is None:
    folder = checkpoints.PRETRAINED_DIR / name
    saved = checkpoints.saved_config(folder)
  if saved is None:
    raise ConfigError(f'no readability model {name!r} in {workspace.model_dir(name)}: '
                      'train it with `python run.py --experiment=readability` (see its '
                      'docstring)')
  spec = ml_collections.ConfigDict({key: tuple(value) if isinstance(value, list) else value
                                    for key, value in saved['model'].items()})
  model, _ = checkpoints.load(folder, lambda: models.make_classifier(spec, jax.random.key(0)))
  logging.info('Loaded the readability model %s from %s.', name, folder)
  return nnx.split(model)


def run_experiment(config: ml_collections.ConfigDict, workspace: io.Workspace,
                   name: str) -> None:
  """The `readability` job: with `export_from` set, turns that reading test into the
  readings file `export_to`; otherwise trains the model on the readings files and
  saves it in `<workdir>/models/<model.name>/` with its held-out agreement."""
  del name  # the model's own name decides where it is saved
  if config.export_from:
    if not config.export_to.endswith('.npz'):
      raise ConfigError(f'export_to must name a .npz file, not {config.export_to!r}')
    export_readings(pathlib.Path(config.export_from), config.instruction,
                    pathlib.Path(config.export_to))
    print(f'{config.export_to}: the {config.instruction} readings of '
          f'{config.export_from}, without its controls')
    return
  model, metrics = train_readability(config, workspace.mnist)
  checkpoints.save(workspace.model_dir(config.model.name), model, config.model, metrics)
  logging.info('Saved %s: %s', config.model.name, metrics)
  print(f'{config.model.name}: held-out views {metrics["held_out_views"]}, agreement '
        f'with the raters\' majority {metrics["held_out_majority_agreement"]:.3f} '
        f'(best constant answer {metrics["held_out_constant_agreement"]:.3f}), with '
        f'single raters {metrics["held_out_rater_agreement"]:.3f}')
