"""A self-contained web page of the flip digits.

    python run.py --experiment=gallery

Shows `<workdir>/pairs/` (run `pairs` first) as the 10×10 grid with its guides; each
cell turns 180° on hover or click. Adds the panel's verdicts and the method table if
`evaluate` has run, and the flip number if `number` has. Writes
`<workdir>/gallery/index.html`.
"""

import ml_collections

VARIANTS = ('',)


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  del variant
  config = ml_collections.ConfigDict()
  config.job = 'gallery'
  config.pairs_experiment = 'pairs'  # whose pairs.npz the page shows
  return config
