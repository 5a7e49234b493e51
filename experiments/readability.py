"""Trains the readability model: what blind readers name, learned from their readings.

    python run.py --experiment=readability

Reads the committed blind readings `readings/pool1.npz` and `pool2.npz`: three
blind readers each (confident instruction) on every candidate view of
`pairs:classic` with seeds 1 and 2 (K = 4; 800 views each) — *unreported* images, never the grid's seed 0.
To redo them, with people or helpers:

    python run.py --experiment=pairs:classic --workdir=runs/pool1 --config.seed=1 --config.candidates=4
    python run.py --experiment=reading_test --workdir=runs/pool1 \
        --config.inputs=runs/pool1/pairs/classic/candidates.npz --config.natural_flips_per_digit=0 \
        --config.format=sheets --config.instruction=confident --config.raters=r1,r2,r3
    (each rater fills in sheets/<rater>/; save as runs/pool1/reading_test/readings/<rater>.txt)
    python run.py --experiment=readability --config.export_from=runs/pool1/reading_test \
        --config.export_to=readings/pool1.npz

(the readings file keeps the candidates' views and the answers, not the test's real
MNIST controls, so it can be committed; check the raters' controls with `evaluate`
first). Trains
the kit's CNN classifier kind with 11 classes (the ten digits, "can't tell") on
every answer beside 20,000 MNIST digits, holding out 20% of the views; writes
`<workdir>/models/readability/` with the held-out agreement with the raters'
majority (see the README's method table for the figures). `pairs:classic
--config.readability=readability` then chooses by it. `readability:forced` learns
the forced readings of the same views instead (`readings/pool1_forced.npz`,
`pool2_forced.npz`: three other blind readers each, `--config.instruction=forced`
in the commands above) into `<workdir>/models/readability_forced/`.
`readings/pool3.npz` and `pool3_forced.npz` (three blind readers per instruction)
hold every candidate view of a portfolio run whose last six candidates of eight
go without the classifier's push (`python run.py --experiment=pairs:classic
--workdir=runs/pool3 --config.seed=3 --config.candidates=8
--config.generator.unpushed_per_pair=6`, then the commands above with pool3); add
them with `--config.readings=…` and another `--config.model.name=…`, e.g.
`readability:forced --config.model.name=readability_forced3
--config.readings=readings/pool1_forced.npz,readings/pool2_forced.npz,readings/pool3_forced.npz`.
`readings/pool4.npz` and `pool4_forced.npz` (three blind readers per instruction)
hold every candidate view of `pairs_reader` with seed 4 and K = 4 (`python run.py
--experiment=pairs_reader --workdir=runs/pool4 --config.seed=4 --config.candidates=4`,
then the commands above with pool4 and `candidates.npz` under `pairs_reader/`): the
glyphs that guiding by `readability_forced3` draws, for a reader model trained on
pools 1–4 (`--config.model.name=readability_forced4`). `readings/pool5_forced.npz` …
`pool8_forced.npz` (three blind readers each, forced only) are the same for seeds
15–18 (`--workdir=runs/pool5 --config.seed=15`, … `pool8`, seed 18; the reading
tests with `--config.instruction=forced --config.seed=105` … `108`); `pool9_forced.npz`
… `pool12_forced.npz` likewise for seeds 31–34 (reading-test seeds 109–112).
`readings/pool13_forced.npz` (three blind readers, forced) holds what a readers'
model *chose*: the two grids `pairs_reader:hard` kept on seeds 40 and 41 (`python
run.py --experiment=pairs_reader:hard --workdir=runs/pool13/s40 --config.seed=40`,
the same with s41 and 41; both `pairs.npz` copied to `runs/pool13/in/hard_s40/` and
`hard_s41/` so that the test names them apart; the reading test with those two
inputs, `--config.natural_flips_per_digit=0 --config.seed=113`; exported with
`readability:forced --config.export_from=runs/pool13/reading_test`): 1,200
readings of 400 views, for a chooser retrained on its own picks:
`readability_forced13` (pools 1–13, committed in `pretrained/` with its command),
which chooses in the main job, `pairs`. `readings/pool14_forced.npz` (three blind
readers, forced) likewise holds the grids the main job itself kept on the unreported
seeds 46 and 47 (`python run.py --experiment=pairs --workdir=runs/pool14/s46
--config.seed=46`, the same with s47 and 47; inputs copied to
`runs/pool14/in/pairs_s46/` and `pairs_s47/`; `--config.natural_flips_per_digit=0
--config.seed=114`): 1,200 readings of 400 views, not yet learned by any model.
`readability:smoke` is for
the tests (a tiny model, one epoch).
"""

import pathlib

import ml_collections

from experiments import train

VARIANTS = ('', 'forced', 'smoke')

READINGS = pathlib.Path(__file__).resolve().parent.parent / 'readings'


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.job = 'readability'
  # Readings files, comma-separated; readings of images that are reported must
  # never be among them.
  pools = ('pool1_forced', 'pool2_forced') if variant == 'forced' else ('pool1', 'pool2')
  config.readings = ','.join(str(READINGS / f'{pool}.npz') for pool in pools)
  # With export_from (a reading-test folder) set, the job only writes its readings
  # file export_to.
  config.export_from = ''
  config.export_to = ''
  config.instruction = 'confident'  # whose answers to learn
  config.held_out_fraction = 0.2  # views never trained on, to measure agreement
  config.split_seed = 0
  config.mnist_examples = 20000  # real digits beside the readings
  config.reading_repeats = 10  # each reading seen this many times per epoch
  config.model = train.classifier_config()
  config.model.name = 'readability'
  config.model.seed = 11
  config.model.model.num_classes = 11
  config.model.max_shift = 1
  config.model.epochs = 4
  if variant == 'forced':  # what readers name when they must name a digit
    config.instruction = 'forced'
    config.model.name = 'readability_forced'
  if variant == 'smoke':
    config.model = train.classifier_config('smoke')
    config.model.name = 'readability_smoke'
    config.model.model.num_classes = 11
    config.model.train_examples = 0  # every example: MNIST's share is mnist_examples
    config.mnist_examples = 4096
    config.reading_repeats = 4
  return config
