"""A blind reading test of flip digits: readers who do not know the targets.

    python run.py --experiment=reading_test                 # serves it; open the address
    python run.py --experiment=reading_test --config.format=sheets --config.raters=r1,r2,r3

Shows every view of `<workdir>/pairs/pairs.npz` (or `--config.inputs=A/pairs.npz,…`),
upright and turned as separate trials, plus the natural-flip control (real 0, 1, 8,
6, 9), 30 typical real digits (`reading_test.typical_test_digits`) and 15 catch
trials (noise, two digits drawn over each other), one at a time in each rater's own
order. `--config.instruction=forced` (default: the
digit it most looks like) or `confident` (only digits read without hesitation).
Answers land in `<workdir>/reading_test/readings/`; score them with
`python run.py --experiment=evaluate --config.readings=runs/reading_test`.
Expected (README, three blind readers per instruction): their majority reads `pairs`
both ways on ≈ 51–67 of 100 pairs under `forced` and ≈ 9–20 under `confident`
(twenty-one tests); the real natural flips on ≈ 95–100% and ≈ 70–83%. `reading_test:smoke`: 20 real digits, 4 catch trials.
"""

import ml_collections

VARIANTS = ('', 'smoke')


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.job = 'reading_test'
  config.inputs = ''  # comma-separated pairs.npz paths; '' = <workdir>/pairs/pairs.npz
  # The natural-flip control: this many real 0, 1, 8, 6 and 9 each, both views (20:
  # 200 views, the evaluate control's digits, so the panel stands beside; 0 = none;
  # 4 makes a quicker test of 285 views with `pairs`).
  config.natural_flips_per_digit = 20
  config.real_digits = 30  # real test digits, whose answer is their label
  config.noise_catch = 5  # uniform noise, whose answer is "can't tell"
  config.overlay_catch = 10  # two real digits drawn over each other, "can't tell"
  config.seed = 0  # the controls, and with each rater's name their order
  config.instruction = 'forced'  # or 'confident'; recorded with every reading
  config.format = 'page'  # 'page' (a local server) or 'sheets' (PNG contact sheets)
  config.port = 8765  # the page's port on 127.0.0.1; 0 = any free port
  config.raters = ''  # sheets: comma-separated rater names, each gets own sheets
  config.per_sheet = 40  # sheets: views per sheet
  config.columns = 8
  config.scale = 4  # sheets: each 28×28 view drawn at 4× (112 px)
  if variant == 'smoke':
    config.real_digits = 20
    config.noise_catch = 2
    config.overlay_catch = 2
  return config
