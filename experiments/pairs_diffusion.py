"""Method 5: view-averaged diffusion sampling (Visual Anagrams, for flip digits).

    python run.py --experiment=pairs_diffusion

Draws every pair's K candidates from the class-conditional flow-matching model of
`diffusion` (trained first if it is not cached: ≈ 35 minutes on 2 CPU cores),
averaging at every Euler step the guided velocity for (x, a) with the turned-back
velocity for (rot180 x, b); optional classifier guidance by the robust generating
classifier's soft-min flip objective. Each pair keeps the candidate the generating
classifier reads best. Expected: pen-stroke digits; see the README's method table
for what the judges read.
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
  config.sampler.classifier_weight = 1.0  # 0 = pure view-averaged sampling
  config.candidates = 8 if variant != 'smoke' else 2
  config.objective.softmin_temperature = 1.0
  config.objective.jitter = 1.0
  config.objective.rotation_degrees = 5.0
  return config
