"""Speed: training and ascent throughput against this machine's matmul peak.

    python run.py --experiment=bench

Times, in one run (medians of `repeats`): a 2048² float32 matmul (the practical
peak); one training step of the generating classifier (images/s, FLOP/s by XLA's
count); the 100-pair ascent as one jit(vmap) program, as a Python loop over pairs
calling a jitted one-pair ascent, and eagerly (extrapolated); 100·K candidates for
K = 1, 4, 16, 64; and process start to the first 100-pair grid with the persistent
compilation cache cold and warm. Writes `<workdir>/bench/bench.json`; ≈ 5 minutes
on 2 CPU cores. Expected there: batched ≈ 10× the per-pair loop (see the README).
`bench:smoke` times tiny shapes in seconds (tests).
"""

import ml_collections

from experiments import train

VARIANTS = ('', 'smoke')

DIGITS = '(0,1,2,3,4,5,6,7,8,9)'


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.job = 'bench'
  # The generating classifier's architecture (the smoke one for smoke), random weights.
  config.classifier = train.classifier_config('smoke' if variant == 'smoke' else '')
  config.pairs = 100  # images per ascent timing (the 10×10 grid)
  config.repeats = 5
  config.matmul_size = 2048
  config.steps = 50  # ascent steps per timed run
  config.eager_steps = 2  # steps run eagerly, extrapolated to `steps`
  config.candidates = (1, 4, 16, 64)
  config.scaling_steps = 10
  # run.py arguments of the first-grid timing ('' = skip): the blog's 100-pair grid
  # on the small smoke classifier, so that no minutes of training are timed.
  config.first_grid = (f'--experiment=blog_pairs:smoke --config.upright_digits={DIGITS} '
                       f'--config.rotated_digits={DIGITS} --config.generator.steps=300')
  if variant == 'smoke':
    config.repeats = 1
    config.matmul_size = 256
    config.pairs = 8
    config.steps = 3
    config.eager_steps = 1
    config.candidates = (1, 2)
    config.scaling_steps = 2
    config.first_grid = ''
  return config
