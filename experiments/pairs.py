"""The kit's main job: a 10×10 grid of flip digits that people and other models read.

    python run.py --experiment=pairs

The best combination found (see the README's method table): view-averaged sampling
from the class-conditional flow-matching model (`pairs_diffusion`; the model is
committed in `pretrained/`), classifier-free guidance 3, plus at every step the
gradient (weight 2) of the soft-min flip objective (with jitter and small rotations)
at the model's clean-image estimate, on the robust *open-set* generating classifier
(`train:open_set`: an 11th class for two digits drawn over each other, so that high
p(a | x) also means one digit); K = 8 candidates per pair in one compiled 20-step
scan, each pair keeping, among the candidates the generator reads both ways, the one
whose worse view the diffusion model finds most typical. Expected: three blind
readers' majority reads 51–67 of the 100 pairs both ways (forced) and 9–20
(confident) over twenty-one reading tests (`pairs_reader`: 59–77 forced);
evaluate: the judges' majority ≈ 93–97% both ways, ≈ 76–87% with the open-set
veto, robust judge ≥ 90%, Fréchet ≈ 170 against a floor of ≈ 84; ≈ 9 minutes cold
(training the classifier) and ≈ 3.3 minutes warm on 2 CPU cores.
"""

import ml_collections

from experiments import blog_pairs
from experiments import pairs_diffusion
from experiments import train

VARIANTS = pairs_diffusion.VARIANTS


def generation(variant: str) -> ml_collections.ConfigDict:
  config = pairs_diffusion.generation(variant)
  train.open_set(config.classifier)
  config.generator.guidance = 3.0
  config.generator.classifier_weight = 2.0
  config.generator.select = 'denoising'
  if variant != 'smoke':
    config.generator.steps = 20
    config.candidates = 8
  return config


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  return blog_pairs.grid(generation(variant), variant)
