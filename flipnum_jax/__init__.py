"""flipnum-jax: flip digits that read as one digit upright and another turned 180°."""
