"""The prior generator: ascent in the latent space of a VAE trained on digits
upright and turned 180°, so every candidate is something the decoder draws — pen
strokes, not pixel noise (the blog's second attempt, a learned prior, as a VAE).
"""

import jax
import ml_collections
import numpy as np
from flax import nnx

from flipnum_jax import io
from flipnum_jax import train
from flipnum_jax.errors import ConfigError
from flipnum_jax.generators import ascent
from flipnum_jax.generators import base


def default_config() -> ml_collections.ConfigDict:
  config = ascent.default_config()
  config.name = 'prior'
  config.init = 'example_blend'  # encoded: the latent ascent starts from its code
  config.optimizer = 'adam'
  config.learning_rate = 0.05
  config.steps = 150
  config.prior_weight = 0.1  # prior_weight·½‖z‖² keeps latents where the prior has mass
  config.model = train.vae_config()
  return config


def check(config: ml_collections.ConfigDict) -> None:
  ascent.check(config)
  if not config.prior_weight >= 0:
    raise ConfigError(f'generator.prior_weight must be ≥ 0, not {config.prior_weight}')


def draw(config: ml_collections.ConfigDict, candidate_pairs: np.ndarray,
         guide: base.Guide, workspace: io.Workspace, key: jax.Array) -> base.Drawn:
  """One image per candidate pair: the decoder's drawing of a latent moved by
  ascent from the encoding of `config.init`'s start."""
  init_key, ascent_key = jax.random.split(key)
  start = ascent.init_function(config.init)(candidate_pairs, workspace.mnist, init_key)
  vae, _ = train.get_model('vae', config.model, workspace)
  return ascent.ascend_candidates(config, vae.encode(start)[0], candidate_pairs, guide,
                                  ascent_key, nnx.split(vae), config.prior_weight)
