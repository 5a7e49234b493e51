"""Flip digits found, not drawn: for each pair, the real training digit a whose
180° turn a readability model of blind readings reads best as b.

    python run.py --experiment=readability:forced --config.model.name=readability_forced3 \
        --config.readings=readings/pool1_forced.npz,readings/pool2_forced.npz,readings/pool3_forced.npz
    python run.py --experiment=pairs_retrieval

The first command (≈ 2 minutes) trains the generator-side readability model on the
committed forced blind readings of unreported candidates; the second reads the
first 5,000 training digits of each class upright and turned with it and keeps, for
each pair (a, b), the K = 8 digits a whose weaker reading is highest, the grid
showing the best (`generators.retrieval`; ≈ 30 s). Upright, every image is a
person's digit; only the turn can fail. `pairs_retrieval:classifier` ranks by the
generating classifier instead (no readability model needed). Expected: see the
README's method table.
"""

import ml_collections

from experiments import blog_pairs
from experiments import train
from flipnum_jax.generators import retrieval

VARIANTS = ('', 'classifier', 'smoke')


def generation(variant: str) -> ml_collections.ConfigDict:
  config = blog_pairs.generation(variant, retrieval.default_config())
  train.open_set(config.classifier)
  if variant == 'smoke':
    config.generator.per_class = 20
    config.candidates = 2
    return config
  config.candidates = 8
  if variant == '':
    config.readability = 'readability_forced3'
    config.readability_guides = True  # the readability model ranks the digits
  return config


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  return blog_pairs.grid(generation(variant), variant)
