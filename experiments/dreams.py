"""The blog's first two pictures: what the classifier 'dreams' each digit looks like.

    python run.py --experiment=dreams

For each digit 0–9, Adam ascent on log p(digit | x) from uniform noise and from the
MNIST mean image, all 20 images in one compiled batch per start.
Expected: from noise, static that the classifier rates ≈ 1.00; from the mean, digit
ghosts with spikes and blur, also ≈ 1.00. Outputs `dreams.png`, `dreams.npz`.
`dreams:smoke`: a few steps on the smoke classifier (tests).
"""

import ml_collections

from experiments import train

VARIANTS = ('', 'smoke')


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.job = 'dreams'
  config.seed = 0
  config.classifier = train.classifier_config(variant)
  config.digits = tuple(range(10))
  config.ascent = ml_collections.ConfigDict(
      {'optimizer': 'adam', 'learning_rate': 0.01, 'steps': 300})
  if variant == 'smoke':
    config.ascent.steps = 5
  return config
