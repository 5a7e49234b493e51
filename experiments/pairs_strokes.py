"""Flip digits drawn as a few pen strokes (the `strokes` generator): a different
kind of image than the flow sampler's pixels.

    python run.py --experiment=pairs_strokes

Each candidate is four cubic Bézier strokes of one pen width each, rendered
differentiably; Adam moves them (200 steps, 0.2 pixels) to raise `pairs_reader`'s guide — the
soft-min flip objective (jitter, small rotations) of the open-set robust classifier
times the readability model `readability_forced3` — while score distillation from
the committed flow model (weight 0.3, noise levels 0.2–0.8, guidance 3) pulls both
views towards handwriting it knows. K = 4 per pair from random strokes; the choice
is `pairs:classic`' own (among candidates the classifier reads both ways, the one
whose worse view the flow model finds most typical). Expected (README, test 31, seed 28,
three fresh blind readers per instruction): clean, even strokes that the readers'
majority reads both ways on 29 of 100 pairs (forced) and 6 (confident), against 61
and 9 for `pairs_reader` on the same seed; panel 45%, Fréchet ≈ 275–306; ≈ 13
minutes on 2 CPU cores (400 candidates × 200 steps). Not a method that reads
better: a generator to build on.
"""

import ml_collections

from experiments import blog_pairs
from experiments import diffusion
from experiments import pairs
from flipnum_jax.generators import strokes

VARIANTS = blog_pairs.VARIANTS


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  config = pairs.generation(variant)
  config.generator = strokes.default_config()
  config.generator.model = diffusion.model_config(variant)
  if variant == 'smoke':
    config.generator.steps = 3
  else:
    config.guide_reader = 'readability_forced3'
    config.candidates = 4
  return blog_pairs.grid(config, variant)
