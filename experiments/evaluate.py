"""Judges pairs files with a panel of models that did not make them.

    python run.py --experiment=evaluate [--config.inputs=runs/blog_pairs/pairs.npz,runs/pairs/pairs.npz]
    python run.py --experiment=evaluate --config.samples=runs/diffusion/samples.npz

By default it judges `<workdir>/pairs/pairs.npz`; `samples` names files of plain
digits (images and labels), judged as the digit each was drawn as. The first run trains the judges
(an MLP, a wider CNN trained with random affine changes, an FGSM-trained robust CNN;
≈ 10 minutes on 2 CPU cores) and caches them as `<workdir>/models/judge_*`; a
nearest-neighbour judge reads the 60,000 training digits. Outputs go to
`<workdir>/evaluate/`: evaluation.json, report.md, <input>/readable.png. When a
reading test has readings (`--config.readings=runs/reading_test`, found there by
default), the report leads with what the blind readers read, beside the panel.
Expected on `blog_pairs`: generator 100% both ways, panel far lower (see README).
`evaluate:smoke` trains tiny judges on 4,096 digits in seconds (tests).
"""

import ml_collections

from experiments import train
from flipnum_jax import models

VARIANTS = ('', 'smoke')


def judge_config(name: str, seed: int, model: dict, variant: str,
                 **training) -> ml_collections.ConfigDict:
  """A judge: the classifier config with its own name, seed, architecture, training."""
  config = train.classifier_config()
  config.name = name
  config.seed = seed
  # The architecture's declared knobs, these ones changed (an MLP's `hidden` is a
  # tuple of widths, so the subtree is replaced rather than updated key by key).
  config.model = ml_collections.ConfigDict({**models.classifier_spec().to_dict(), **model})
  config.update(training)
  if variant == 'smoke':
    config.name = f'{name}_smoke'
    config.epochs = 1
    config.train_examples = 4096
  return config


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.job = 'evaluate'
  config.seed = 0
  config.inputs = ''  # comma-separated pairs.npz paths; '' = <workdir>/pairs/pairs.npz
  # comma-separated samples.npz paths of plain digits (the `diffusion` experiment's),
  # judged as the digit each was drawn as; when set, `inputs` has no default.
  config.samples = ''
  # Seeds, architectures and augmentations all differ from the generating classifier
  # (seed 0, 4×4 kernels, features (32, 64), hidden 256, ±2-pixel shifts).
  config.judges = ml_collections.ConfigDict({
      'judge_mlp': judge_config(
          'judge_mlp', 101, {'kind': 'mlp', 'hidden': (512, 256)}, variant,
          epochs=8, learning_rate=1e-3, max_shift=1),
      'judge_cnn': judge_config(
          'judge_cnn', 202, {'conv_features': (48, 96), 'hidden': 128, 'kernel_size': 5},
          variant, epochs=6, rotation_degrees=12.0, scale_range=0.1),
      'judge_robust': judge_config(
          'judge_robust', 303, {'conv_features': (32, 64, 128), 'hidden': 256,
                                'kernel_size': 3},
          variant, epochs=10, max_shift=0, learning_rate=2e-3,
          adversarial={'epsilon': 0.3, 'step_ratio': 1.25, 'ramp_epochs': 3}),
      # Open-set: an 11th class for two digits drawn over each other (one turned),
      # so a view must read as one digit, not as a digit plus another's strokes.
      'judge_one_digit': judge_config(
          'judge_one_digit', 404, {'conv_features': (32, 64), 'hidden': 192,
                                   'kernel_size': 5, 'num_classes': 11},
          variant, epochs=6, max_shift=2, overlay_fraction=0.25),
  })
  # A view is read when a strict majority of the other judges read it and this one
  # does too ('' = majority only): the open-set judge can veto but not outvote.
  config.veto_judge = 'judge_one_digit'
  config.pgd = ml_collections.ConfigDict(
      {'epsilon': 0.3, 'steps': 40, 'step_size': 0.01, 'examples': 1000, 'seed': 0})
  config.knn = ml_collections.ConfigDict({'k': 5, 'train_examples': 0})  # 0 = all
  config.controls = True  # also judge real natural flips and noise, for calibration
  # Blind readers: a reading test's folder (`reading_test`'s output) whose readings/
  # to score first; '' = <workdir>/reading_test when it holds readings. With readings
  # and no `inputs`, the panel judges the test's own input files.
  config.readings = ''
  config.min_real_accuracy = 0.9  # a rater under this on real digits is flagged
  config.max_catch_digits = 0.5  # … and one who calls more catch trials digits
  config.frechet_judge = 'judge_cnn'
  config.floor_repeats = 5
  config.real_distance_examples = 1000
  if variant == 'smoke':
    config.judges.judge_one_digit.epochs = 2  # its 11th class needs a little longer
    config.judges.judge_robust.adversarial.epsilon = 0.1
    config.judges.judge_robust.adversarial.ramp_epochs = 0
    config.pgd.examples = 100
    config.pgd.steps = 5
    config.knn.train_examples = 4096
    config.real_distance_examples = 200
    config.floor_repeats = 2
  return config
