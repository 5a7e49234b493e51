"""Method 5: view-averaged diffusion sampling (Visual Anagrams, for flip digits).

    python run.py --experiment=pairs_diffusion

Draws every pair's K = 4 candidates from the class-conditional flow-matching model of
`diffusion` (the committed one in `pretrained/`, or trained if its config changes:
≈ 36 minutes on 2 CPU cores), averaging at each of 25 Euler steps the guided velocity
(classifier-free guidance 3) for (x, a) with the turned-back velocity for
(rot180 x, b); each pair keeps the candidate the generating classifier reads best.
No classifier guidance: the method as published. Expected (evaluate): clean pen
strokes, but most candidates settle for one reading (panel ≈ 43% both ways);
≈ 1.5 minutes warm. `pairs` adds classifier guidance and a denoising-based choice.
"""

import ml_collections

from experiments import blog_pairs
from experiments import diffusion
from experiments import train
from flipnum_jax.generators import flow

VARIANTS = blog_pairs.VARIANTS


def generation(variant: str) -> ml_collections.ConfigDict:
  config = blog_pairs.generation(variant, flow.default_config())
  if variant != 'smoke':
    config.classifier = train.classifier_config('robust')
  config.generator.model = diffusion.model_config(variant)
  if variant == 'smoke':  # autoguidance's weak model: smaller still, fewer digits
    config.generator.weak_model = diffusion.model_config(variant)
    config.generator.weak_model.name = 'diffusion_smoke_weak'
    config.generator.weak_model.model.features = 8
    config.generator.weak_model.train_examples = 256
  config.generator.steps = 25 if variant != 'smoke' else 3
  config.candidates = 4 if variant != 'smoke' else 2
  config.objective.softmin_temperature = 1.0
  config.objective.jitter = 1.0
  config.objective.rotation_degrees = 5.0
  return config


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  return blog_pairs.grid(generation(variant), variant)
