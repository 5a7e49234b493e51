"""The blog's 10×10 flip-pair grid, reproduced faithfully: the faithful baseline.

    python run.py --experiment=blog_pairs

Adam ascent on the image from the MNIST mean, for all 100 (a, b) at once, on the
plain generating classifier: maximize log p(a | x) + log p(b | rot180 x).
Expected: the classifier's mean min-confidence ≈ 0.99 — while a person sees blurred,
spiky strokes that only sometimes read as a and b (see the README).
`blog_pairs:smoke` runs 2×2 pairs for a few steps on the smoke classifier (tests).
"""

import ml_collections

from experiments import train

VARIANTS = ('', 'smoke')


def pairs_config(variant: str, job: str) -> ml_collections.ConfigDict:
  """Config of a pairs-type experiment; `pairs.py` starts from this one too."""
  config = ml_collections.ConfigDict()
  config.job = job
  config.seed = 0
  config.classifier = train.classifier_config(variant)
  config.upright_digits = tuple(range(10))
  config.rotated_digits = tuple(range(10))
  config.init = 'mean'  # 'mean' (the MNIST mean image) or 'noise' (uniform)
  config.ascent = ml_collections.ConfigDict(
      {'optimizer': 'adam', 'learning_rate': 0.01, 'steps': 300})
  if variant == 'smoke':
    config.upright_digits = (3, 6)
    config.rotated_digits = (7, 9)
    config.ascent.steps = 5
  return config


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  return pairs_config(variant, job='pairs')
