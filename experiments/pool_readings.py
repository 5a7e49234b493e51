"""Pools the blind readings of several reading tests over the images they share.

    python run.py --experiment=pool_readings --workdir=runs \
        --config.tests=runs/levers/reading_test,runs/levers2/reading_test

Each reader is scored as `evaluate` scores them (a rater the controls flag is left
out), and every input shown in more than one test is read by all their raters
together. Writes `<workdir>/pool_readings/pooled.json` and heat-maps: per input the
weaker view's share of readers for each pair (✓ where the pooled majority reads it
both ways), and per set of pairs shown in several inputs how many inputs are read on
each pair (✓ where some input is: the union). Expected on the README's nine tests:
`pairs`, read by 27 blind readers per instruction, is read both ways by their pooled
majority on 57 pairs (forced) and 16 (confident); over the 19 flip inputs of the
same 100 pairs, some input is read both ways on 86 pairs (forced) and 30
(confident).
"""

import ml_collections

from experiments import evaluate

VARIANTS = ('',)


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  del variant  # the only variant
  scoring = evaluate.get_config()
  config = ml_collections.ConfigDict()
  config.job = 'pool_readings'
  config.tests = ''  # comma-separated reading-test folders (each with readings/)
  # A rater is flagged as `evaluate` flags them.
  config.min_real_accuracy = scoring.min_real_accuracy
  config.max_catch_digits = scoring.max_catch_digits
  return config
