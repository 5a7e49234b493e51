"""`pairs:classic` guided by what blind readers name as well: the generating
classifier's probabilities multiplied, in the guide, by those of a readability model.

    python run.py --experiment=pairs_reader

Everything as in `pairs:classic` (view-averaged flow sampling, classifier-free
guidance 3, the soft-min flip objective's gradient at weight 2, K = 8, the same
choice), but
the objective reads each view with p ∝ p_classifier · p_reader, a product of
experts (`generators.guide_model`), where the reader is `readability_forced3`:
the kit's CNN trained on 9,600 forced blind readings of 3,200 candidate views that
are never reported (`readings/pool{1,2,3}_forced.npz`), committed in `pretrained/`.
The choice among candidates stays the generating classifier's and the flow model's.
Expected (README, tests 15–35, three fresh blind readers per instruction each):
the readers' majority reads 59–77 of 100 pairs both ways (forced) against 54–67
for `pairs:classic` in the same tests (paired p ≤ 0.03 in four of seven), and 8–13
(confident) against 11–17; the models' panel 39–50% (the open-set veto judge
rejects half); ≈ 2.5 minutes warm on 2 CPU cores. `--config.guide_reader=A,B`
guides by several readers at once (tests 21–22: no better);
`--config.generator.resample_every=5` resamples the particles by the product
every five steps (tests 25–26: panel 63–68% and nearer real digits, readers no
better); with `--config.generator.classifier_weight=1` as well, the panel reads
74–77% (tests 29–30; readers 65 forced, no better).

    python run.py --experiment=pairs_reader:chosen

draws K = 32 candidates per pair and keeps, per pair, the one whose weaker view
`readability_forced12` (a readers' model of all twelve unreported pools, committed
in `pretrained/`) most expects to be named: 77, 76 and 77 forced against 61, 70
and 69 for `pairs_reader` on seeds 29, 30 and 35 (tests 32–34; 45 pairs gained
against 15, p = 0.0001; seed 35 read again in test 35: 81 against 77), confident
9–12 unchanged, panel 30–32%; ≈ 8.5 minutes of sampling on 2 CPU cores (K = 16
read 71 on seed 35, K = 64 79 in test 35; seed 36 in test 36: 78). Outputs in
`<workdir>/pairs_reader/chosen/`.

    python run.py --experiment=pairs_reader:hard

spends the search where it is needed: K = 8 for every pair, then a second round of
32 more candidates for the 40 pairs whose best candidate `readability_forced12`
rates lowest (`hard_pairs`, `hard_pair_candidates`), each pair keeping the model's
best of all its candidates: 2,080 candidates instead of 3,200, ≈ 5.7 minutes of
sampling. Expected (README, tests 36–39): 79, 84, 79 and 76 forced on seeds 36–39,
against 78 and 77 for `:chosen` on seeds 36 and 37, 71 and 67 for `pairs_reader`
on seeds 37 and 39 (25 pairs gained, 3 lost) and 62 and 63 for `pairs:classic` on
seeds 38 and 39 (38 gained, 8 lost); confident 10–12, panel 26–38%. With
`--config.hard_pairs=25 --config.hard_pair_candidates=16` (1,200 candidates, ≈ 3
minutes, about `pairs:classic`' cost): 80 on seed 37. Outputs in
`<workdir>/pairs_reader/hard/`. The main job `pairs` is this method with K = 6,
25 × 12 and the classifier in the choice (`readability_with_classifier`).
"""

import ml_collections

from experiments import blog_pairs
from experiments import pairs

VARIANTS = (*pairs.GENERATION_VARIANTS, 'chosen', 'hard')


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  config = pairs.generation('' if variant in ('chosen', 'hard') else variant)
  config.guide_reader = 'readability_forced3'
  if variant == 'chosen':  # K = 32, kept by the readers' model of all twelve pools
    config.candidates = 32
    config.readability = 'readability_forced12'
  if variant == 'hard':  # K = 8, then 32 more for the 40 pairs that model rates worst
    config.readability = 'readability_forced12'
    config.hard_pairs = 40
    config.hard_pair_candidates = 32
  return blog_pairs.grid(config, variant)
