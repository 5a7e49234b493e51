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

VARIANTS = blog_pairs.VARIANTS


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  config = blog_pairs.pairs_config(variant, job='pairs')
  for unused in ('init', 'ascent', 'prior'):  # ascent settings; sampling has its own
    del config[unused]
  config.method = 'diffusion'
  if variant != 'smoke':
    config.classifier = train.classifier_config('robust')
  config.diffusion = diffusion.diffusion_config(variant)
  config.sampler = diffusion.sampler_config(variant)
  if variant != 'smoke':
    config.sampler.steps = 25
  # Weight of the generating classifier's gradient at each step (0 = none).
  config.sampler.classifier_weight = 0.0
  # 'generator' (min(p_a, p_b)) or 'denoising' (also the model's own typicality).
  config.sampler.select = 'generator'
  config.candidates = 4 if variant != 'smoke' else 2
  config.objective.softmin_temperature = 1.0
  config.objective.jitter = 1.0
  config.objective.rotation_degrees = 5.0
  return config
