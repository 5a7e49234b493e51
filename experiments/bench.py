"""Speed: the main job's sampler, training and ascent against this machine's matmul
peak, and against PyTorch ports of the same work.

    python run.py --experiment=bench

Times, in one run (medians of `repeats` after a warm-up; FLOPs by XLA's count):
- a 2048² float32 matmul (the practical peak);
- the training steps of the generating classifier (batch 128) and of the flow
  model's U-Net (the `diffusion` experiment's: flow matching, batch 64, EMA),
  images/s, and the PyTorch ports' (when `torch` imports);
- the classic main job's sampler: `flow.sample_flips` with the `pairs:classic`
  settings (view averaging, guidance 3, classifier guidance weight 2 with the
  soft-min, jittered, rotated objective) on 100 pairs × K = 8 candidates, `sampler.steps` Euler steps
  (3: each takes ≈ 15 s here, and the per-step cost is what matters; it runs
  20): image-steps/s, compile time, where a step's time goes (the U-Net's pass over
  4N images, the classifier's gradient), the scan body's penalty (the same step
  called from a Python loop), the scan unrolled, and the PyTorch port from the same
  noise (its images must agree with the kit's);
- the old ascent method: 100 pairs as one jit(vmap) program, as a Python loop over
  pairs, eagerly (extrapolated), and its PyTorch port; 100·K candidates for K = 1,
  4, 16, 64;
- process start to the first 100-pair grid, compilation cache cold and warm.
Writes `<workdir>/bench/bench.json` and prints the table; ≈ 10.5 minutes on 2
CPU cores. Expected there (the README's Performance section): the U-Net's pass over
4N images is nearly all of a sampler step (8.7 of 9.2 s, the classifier gradient
0.6 s); the PyTorch port's images match the kit's (≈ 99% within 1e-4; see
`bench_peers.torch_sampler`); kit / PyTorch ≈ 0.88 for the sampler, 0.86 and 0.46
for the classifier and U-Net training steps. `bench:smoke` times tiny shapes
(≈ 2 minutes: its compiles).
"""

import ml_collections

from experiments import diffusion
from experiments import pairs
from experiments import train

VARIANTS = ('', 'smoke')

DIGITS = '(0,1,2,3,4,5,6,7,8,9)'


def sampler_config(variant: str = '') -> ml_collections.ConfigDict:
  """The sampler `pairs:classic` runs, read from its own config so the two cannot
  drift: its U-Net and generating classifier architectures (random weights), objective,
  guidance, classifier weight and K; only the steps are fewer."""
  generation = pairs.generation(variant)
  return ml_collections.ConfigDict({
      'unet': generation.generator.model.model,
      'classifier': generation.classifier.model,
      'objective': generation.objective,
      'guidance': generation.generator.guidance,
      'classifier_weight': generation.generator.classifier_weight,
      'candidates': generation.candidates,
      'steps': 3 if variant != 'smoke' else 2,
      'repeats': 1,  # each run is ≈ 45 s here; the ratios, not the noise, matter
      # lax.scan unroll factors timed against flow.py's plain scan (none for smoke:
      # each is a compile of tens of seconds; tests/test_bench.py checks the path)
      'unroll': (3,) if variant != 'smoke' else ()})


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.job = 'bench'
  # The generating classifier's architecture (the smoke one for smoke), random weights.
  config.classifier = train.classifier_config('smoke' if variant == 'smoke' else '')
  config.flow = diffusion.model_config(variant)  # the U-Net training step
  config.sampler = sampler_config(variant)
  config.pairs = 100  # pairs per ascent and sampler timing (the 10×10 grid)
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
