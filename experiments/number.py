"""A flip number: reads `upright` as it stands and `rotated` turned 180°.

    python run.py --experiment=number --config.upright=1961 --config.rotated=1961

Each digit is a flip digit made by the `pairs:classic` method (same config:
view-averaged diffusion guided by the open-set robust classifier, the same K
candidates each, all cells in one compiled batch; the main job's readers' models
and second round are not used here); cell i reads upright[i] and, turned,
rotated[n-1-i].
Any two digit strings of equal length ≤ 12. The default,
1961, reads as itself upside down. Outputs number.png, number.npz, number.gif.
"""

import ml_collections

from experiments import pairs

VARIANTS = pairs.GENERATION_VARIANTS


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  config = pairs.generation(variant)
  config.job = 'number'
  config.upright = '1961' if variant != 'smoke' else '16'
  config.rotated = '1961' if variant != 'smoke' else '91'
  return config
