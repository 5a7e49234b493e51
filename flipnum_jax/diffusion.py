"""The diffusion job: the flow-matching model (committed, cached or trained) and
plain samples of each digit drawn with it (see `generators.flow` for the model's
samplers). Writes `samples.npz` (the exchange module's samples format) and
`samples.png` into `<workdir>/<experiment>/`.
"""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from flipnum_jax import exchange
from flipnum_jax import io
from flipnum_jax import plots
from flipnum_jax import sharding
from flipnum_jax import timing
from flipnum_jax.errors import ConfigError
from flipnum_jax.generators import flow


def draw_digits(config: ml_collections.ConfigDict,
                workspace: io.Workspace) -> tuple[np.ndarray, np.ndarray]:
  """`samples_per_digit` plain samples of each digit: images and labels."""
  if config.steps < 1 or not (np.isfinite(config.guidance) and config.guidance >= 0):
    raise ConfigError(f'steps must be ≥ 1 and guidance finite and ≥ 0, not '
                      f'{config.steps} and {config.guidance}')
  if config.samples_per_digit < 1:
    raise ConfigError(f'samples_per_digit must be ≥ 1, not {config.samples_per_digit}')
  graphdef, params = flow.get_model(config.model, workspace)
  labels = np.repeat(np.arange(10, dtype=np.int32), config.samples_per_digit)
  noise_key, step_key, _ = flow.sampling_keys(jax.random.key(config.seed))
  noise, targets = sharding.shard_batch(
      jax.random.normal(noise_key, (len(labels), 28, 28)), jnp.asarray(labels))
  images, seconds = timing.compile_and_run(
      flow.sample_digits, graphdef, params, noise, targets, step_key,
      np.float32(config.guidance), steps=config.steps)
  logging.info('Drew %d digits: compile %.1f s, %d steps in %.1f s.', len(labels),
               seconds.compile, config.steps, seconds.run)
  return sharding.to_host(images), labels


def run_experiment(config: ml_collections.ConfigDict, workspace: io.Workspace,
                   name: str) -> None:
  images, labels = draw_digits(config, workspace)
  out_dir = workspace.output_dir(name)
  exchange.write_samples_file(out_dir / exchange.SAMPLES_FILE, images, labels)
  per_digit = config.samples_per_digit
  shown = min(per_digit, 10)
  index = (np.arange(10)[:, None] * per_digit + np.arange(shown)).ravel()
  plots.sample_grid(out_dir / 'samples.png', images[index], shown,
                    title=f'{config.model.name}: {shown} samples per digit, '
                    f'guidance {config.guidance}, {config.steps} steps')
  print(f'{name}: {len(images)} samples ({per_digit} per digit) in {out_dir}; judge '
        f'them with: python run.py --experiment=evaluate '
        f'--config.samples={out_dir / exchange.SAMPLES_FILE}')
