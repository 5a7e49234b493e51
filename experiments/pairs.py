"""The kit's main job: a 10×10 grid of flip digits, one per (a, b).

    python run.py --experiment=pairs

For now the same method as `blog_pairs` (ascent from the MNIST mean on the plain
classifier); later work makes it read better while `blog_pairs` stays the baseline.
Expected: classifier mean min-confidence ≈ 0.99; outputs in `runs/pairs/`.
"""

import ml_collections

from experiments import blog_pairs

VARIANTS = blog_pairs.VARIANTS


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  return blog_pairs.pairs_config(variant, job='pairs')
