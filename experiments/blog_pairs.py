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
  config.method = 'ascent'  # or 'diffusion' (see pairs_diffusion)
  config.upright_digits = tuple(range(10))
  config.rotated_digits = tuple(range(10))
  # Start: 'mean' (the MNIST mean image), 'noise' (uniform), 'class_blend' (mean of
  # a + turned mean of b) or 'example_blend' (a real a over a real b, turned).
  config.init = 'mean'
  config.candidates = 1  # K per pair; the generator's best min(p_a, p_b) is kept
  config.ascent = ml_collections.ConfigDict(
      {'optimizer': 'adam', 'learning_rate': 0.01, 'steps': 300})
  # A learned prior: when prior.name is set, ascent moves the latent of this VAE
  # (trained on digits upright and turned) instead of pixels.
  config.prior = ml_collections.ConfigDict({
      'name': '', 'seed': 0, 'model': {'hidden': 400, 'latent': 16}, 'epochs': 10,
      'batch_size': 128, 'learning_rate': 1e-3, 'prior_weight': 0.1})
  # objectives.FlipObjective's settings; all zero is the blog's objective,
  # log p(a | x) + log p(b | rot180 x).
  config.objective = ml_collections.ConfigDict({
      'softmin_temperature': 0.0, 'tv_weight': 0.0, 'l2_weight': 0.0,
      'blur_weight': 0.0, 'blur_sigma': 1.0, 'samples': 1, 'jitter': 0.0,
      'rotation_degrees': 0.0, 'scale_range': 0.0, 'crisp': False})
  if variant == 'smoke':
    config.upright_digits = (3, 6)
    config.rotated_digits = (7, 9)
    config.ascent.steps = 5
  return config


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  return pairs_config(variant, job='pairs')
