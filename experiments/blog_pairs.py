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
from flipnum_jax import objectives
from flipnum_jax.generators import ascent

VARIANTS = ('', 'smoke')


def generation(variant: str, generator: ml_collections.ConfigDict
               ) -> ml_collections.ConfigDict:
  """What every flip-digit job shares: the seed, the generating classifier, K
  candidates per pair, the flip objective and the `generator` subtree."""
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.classifier = train.classifier_config(variant)
  config.candidates = 1  # K per pair; `generators.choose` keeps one
  # A second round: this many pairs, those whose best candidate the chooser scores
  # lowest, get hard_pair_candidates more each (0 = no second round).
  config.hard_pairs = 0
  config.hard_pair_candidates = 0
  # A readability model's name (`experiments/readability.py`) to choose by instead
  # of the generating classifier; '' = none.
  config.readability = ''
  # With a readability model choosing: rank candidates by its weaker reading times
  # the generating classifier's (min p), so that of the candidates that model
  # expects read, the classifier's best is kept; the second round's pairs stay
  # those the readability model alone rates worst.
  config.readability_with_classifier = False
  # With a readability model: it also replaces the generating classifier as the
  # guide (the push of ascent or classifier guidance, view weighting, resampling).
  config.readability_guides = False
  # Readability models (comma-separated) whose log-probabilities, each ×
  # guide_reader_weight, join the generating classifier's in the guide (a product of
  # experts, for the push of ascent or classifier guidance) while the choice stays
  # the classifier's; '' = none.
  config.guide_reader = ''
  config.guide_reader_weight = 1.0
  # objectives.FlipObjective's settings; all zero is the blog's objective,
  # log p(a | x) + log p(b | rot180 x).
  config.objective = objectives.objective_config()
  config.generator = generator
  return config


def grid(generation_config: ml_collections.ConfigDict,
         variant: str) -> ml_collections.ConfigDict:
  """A pairs job over `generation_config`: every upright × rotated digit (2×2 for
  smoke)."""
  config = generation_config
  config.job = 'pairs'
  config.upright_digits = tuple(range(10)) if variant != 'smoke' else (3, 6)
  config.rotated_digits = tuple(range(10)) if variant != 'smoke' else (7, 9)
  return config


def ascent_generation(variant: str) -> ml_collections.ConfigDict:
  """The blog's generation: Adam ascent on the pixels from the MNIST mean (5 steps
  for smoke)."""
  config = generation(variant, ascent.default_config())
  if variant == 'smoke':
    config.generator.steps = 5
  return config


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  return grid(ascent_generation(variant), variant)
