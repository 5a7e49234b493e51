"""Replays candidate choosers against blind readings of every candidate (lever 5).

    python run.py --experiment=pairs:classic --workdir=runs/pool1 --config.seed=1 --config.candidates=4
    python run.py --experiment=choice_replay --workdir=runs/pool1 \
        --config.candidates_file=runs/pool1/pairs/classic/candidates.npz --config.seed=1 \
        --config.readings=readings/pool1_forced.npz,readings/pool1.npz

(seed 2 and `readings/pool2*.npz` likewise; pool 3 is the portfolio run of the
readability experiment's docstring: `--config.seed=3 --config.candidates_per_pair=8`
with `readings/pool3*.npz`). For each chooser — the first candidate,
`pairs:classic`' own choice, the flow model's typicality alone, the ensemble vetoes of
`ensembles` (a candidate counts as read only when every member reads both views:
the generating classifier, an adversarially trained closed-set CNN, an MLP, the
nearest class mean; generator-side models with their own seeds, never judges) and
the readers' own best pick — the pairs whose kept candidate the committed blind
readers' majority read both ways, and how many pairs have 0, 1, …, K of their
candidates read. Writes `<workdir>/choice_replay/replay.json`.
Expected (README, three blind readers per instruction and pool): `pairs`' choice 52
and 56 (forced), 15 and 13 (confident); every veto 49–56 and 13–15; the readers' own
pick 64 and 66 (forced); pool 1's pairs by candidates read (0…4), 36 / 15 / 4 / 6
/ 39 (forced). Pool 3 (its unpushed candidates are more typical and less read):
the readers' own pick 71 and 14, the first candidate 55 and 10, `pairs`' choice 49
and 7, typicality alone 27 (forced). Pool 4 (`pairs_reader` with seed 4 and K = 4,
`--config.candidates_file=runs/pool4/pairs_reader/candidates.npz --config.seed=4`
with `readings/pool4*.npz`): the readers' own pick 84 and 11, the first candidate 73
and 11, `pairs`' choice 72 and 10, the vetoes 70–75 (forced). Pools 5–8 (seeds
15–18, forced readings only) likewise. `--config.readability=NAME` replays a
readability model as a chooser too; leave the pool out of its training to replay it
on a seed it has not seen, e.g. for pool 8:

    python run.py --experiment=readability:forced --workdir=runs/pool8 \
        --config.model.name=readability_forced_without8 \
        --config.readings=readings/pool1_forced.npz,…,readings/pool7_forced.npz
    python run.py --experiment=choice_replay --workdir=runs/pool8 \
        --config.candidates_file=runs/pool8/pairs_reader/candidates.npz --config.seed=18 \
        --config.readings=readings/pool8_forced.npz --config.readability=readability_forced_without8

(68 of 100 pairs, against 64 for `pairs_reader`'s own choice and 61 for the first
candidate). Every chooser is scored a second way too, by the raters who did not
pick, one rater held out at a time: over pools 4–12 (`pairs_reader`, K = 4; 900
pairs) the first candidate keeps 516 read pairs, `pairs_reader`'s own choice 517 and
one blind reader's own pick 561 — against 755 for the readers' pick scored by the
same readers (a ceiling inflated by their chance agreements).
"""

import ml_collections

from experiments import train

VARIANTS = ('',)


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  del variant  # the only variant
  config = ml_collections.ConfigDict()
  config.job = 'choice_replay'
  config.candidates_file = ''  # a pairs run's candidates.npz
  config.candidates_per_pair = 4  # K of that run
  config.seed = 1  # that run's seed (its choice's typicality key)
  config.readings = ''  # comma-separated readings files of those candidates' views
  # A readability model to replay as a chooser too ('' = none); train it without
  # these readings (leave this pool out) to replay it on a seed it has not seen.
  config.readability = ''
  # Generator-side ensemble members (besides the generating classifier and the
  # nearest class mean), each a classifier config with its own seed.
  mlp = train.classifier_config()
  mlp.name = 'generator_mlp'
  mlp.seed = 505
  mlp.model = ml_collections.ConfigDict({**mlp.model.to_dict(), 'kind': 'mlp',
                                         'hidden': (512, 256)})
  mlp.epochs = 6
  mlp.max_shift = 1
  mlp.learning_rate = 1e-3
  config.members = ml_collections.ConfigDict({
      'generating': train.classifier_config('open_set'),
      'robust': train.classifier_config('robust'),
      'mlp': mlp})
  config.ensembles = ('generating+robust', 'generating+mlp', 'generating+class_means',
                      'generating+robust+mlp', 'generating+robust+mlp+class_means')
  return config
