"""Flip digits found, not drawn: for each pair, the real training digit a whose
180° turn a readability model of blind readings reads best as b.

    python run.py --experiment=readability:forced --config.model.name=readability_forced3 \
        --config.readings=readings/pool1_forced.npz,readings/pool2_forced.npz,readings/pool3_forced.npz
    python run.py --experiment=pairs_retrieval

The first command (≈ 2 minutes) trains the generator-side readability model on the
committed forced blind readings of unreported candidates; the second reads the
first 5,000 training digits of each class upright and turned with it and keeps, for
each pair (a, b), the K = 8 digits a whose weaker reading is highest, the grid
showing the best (`generators.retrieval`; ≈ 9 s of search, ≈ 16 s in all). Upright,
every image is a person's digit; only the turn can fail, and it does: three blind
readers' majority read the grid both ways on 26 of 100 pairs (forced) and 8
(confident), against 52 and 10 for `pairs` in the same test (README, test 14),
while the readability model expected 81 — a search over 5,000 digits per pair
finds the turned handwriting that model is most wrong about.
`pairs_retrieval:classifier` ranks by the generating classifier instead (no
readability model needed).
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
