"""Method 1 alone: robust guidance (Santurkar et al., 2019).

    python run.py --experiment=pairs_robust

The blog's objective (log p(a | x) + log p(b | rot180 x)) on the adversarially
trained generating classifier (`train:robust`), normalized L2 steps, from the blend
of the class-a mean and the turned class-b mean; one candidate per pair, no
regularizers. Compare with `blog_pairs` (plain classifier, Adam, MNIST mean).
"""

import ml_collections

from experiments import blog_pairs
from experiments import train

VARIANTS = blog_pairs.VARIANTS


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  config = blog_pairs.get_config(variant)
  if variant != 'smoke':
    config.classifier = train.classifier_config('robust')
  config.generator.init = 'class_blend'
  config.generator.optimizer = 'normalized_sgd'
  config.generator.learning_rate = 0.3
  config.generator.steps = 150 if variant != 'smoke' else 5
  return config
