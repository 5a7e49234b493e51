"""Method 4: a learned prior, as the blog's second attempt (a GAN) meant to add.

    python run.py --experiment=pairs_vae

A VAE (MLP, 16-dimensional latent) trained on every MNIST digit upright and turned
180°; ascent moves each candidate's latent — starting from the encoding of a real a
over a real b turned — through the decoder, guided by the robust generating
classifier with the soft-min objective and jitter, K = 4 per pair.
"""

import ml_collections

from experiments import blog_pairs
from experiments import train
from flipnum_jax.generators import prior

VARIANTS = blog_pairs.VARIANTS


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  config = blog_pairs.grid(blog_pairs.generation(variant, prior.default_config()),
                           variant)
  if variant != 'smoke':
    config.classifier = train.classifier_config('robust')
  config.candidates = 4 if variant != 'smoke' else 2
  config.objective.softmin_temperature = 1.0
  config.objective.jitter = 1.0
  config.objective.rotation_degrees = 5.0
  if variant == 'smoke':
    config.generator.steps = 5
    config.generator.model.name = 'vae_smoke'
    config.generator.model.epochs = 1
  return config
