"""The blog's first failure, on pairs: ascent from uniform noise — fooling images.

    python run.py --experiment=fooling_pairs

Same as `blog_pairs` but every image starts as uniform noise. Expected: the
generating classifier is ≥ 0.99 sure of both readings of all 100 pairs, while a
person (and the judge panel, `evaluate`) sees static. Useful as a negative control.
"""

import ml_collections

from experiments import blog_pairs

VARIANTS = blog_pairs.VARIANTS


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  config = blog_pairs.get_config(variant)
  config.generator.init = 'noise'
  return config
