"""Methods 2 and 3 on the plain classifier: regularizers, transformations, soft-min, K.

    python run.py --experiment=pairs_regularized

The plain (non-robust) generating classifier with everything but robustness: a soft
minimum of the two log-probabilities, random jitter/rotation/scale of both views at
every step (2 samples each), total-variation and L2 penalties, a real a over a real b
turned as the start, and K = 4 candidates per pair.
"""

import ml_collections

from experiments import blog_pairs

VARIANTS = blog_pairs.VARIANTS


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  config = blog_pairs.get_config(variant)
  config.generator.init = 'example_blend'
  config.candidates = 4 if variant != 'smoke' else 2
  config.generator.steps = 200 if variant != 'smoke' else 5
  config.objective.softmin_temperature = 1.0
  config.objective.samples = 2
  config.objective.jitter = 1.0
  config.objective.rotation_degrees = 8.0
  config.objective.scale_range = 0.1
  config.objective.tv_weight = 0.3
  config.objective.l2_weight = 0.5
  return config
