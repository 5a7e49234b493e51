"""The number job: a row of flip digits that reads as one number upright and as
another turned 180°.

Turning a row of digits reverses their order, so cell i must read `upright[i]` as it
stands and `rotated[n-1-i]` when turned. Writes `number.png`, `number.npz` (`image`
float32 (28, W), the composed number; `images` (n, 28, 28) and `pairs` (n, 2), the
cells in the exchange format's conventions) and `number.gif` (the number turning
from 0° to 180° and back) into `<workdir>/<experiment>/`.
"""

import ml_collections
import numpy as np
from absl import logging
from PIL import Image

from flipnum_jax import generators
from flipnum_jax import io
from flipnum_jax import plots
from flipnum_jax.errors import ConfigError

MAX_DIGITS = 12
GAP = 2  # blank columns between digits, and at both ends


def check_number(name: str, text: str) -> str:
  if not isinstance(text, str) or not text or not text.isdigit() or not text.isascii():
    raise ConfigError(f'{name} must be a string of digits 0–9, not {text!r}')
  if len(text) > MAX_DIGITS:
    raise ConfigError(f'{name} has {len(text)} digits; at most {MAX_DIGITS}')
  return text


def cell_pairs(upright: str, rotated: str) -> np.ndarray:
  """(n, 2): cell i reads upright[i] as it stands and rotated[n-1-i] turned."""
  if len(upright) != len(rotated):
    raise ConfigError(f'upright ({upright}) and rotated ({rotated}) must have the same '
                      'number of digits')
  return np.array([[int(a), int(b)] for a, b in zip(upright, rotated[::-1])])


def compose(cells: np.ndarray) -> np.ndarray:
  """Cells (n, 28, 28) side by side, each cropped to its inked columns, GAP apart.

  Cropping by ink keeps natural spacing, and is symmetric, so turning the composed
  number equals composing the turned cells in reverse order.
  """
  parts = [np.zeros((28, GAP), np.float32)]
  for cell in cells:
    inked = np.flatnonzero(cell.max(0) > 0.1)
    parts.append(cell[:, inked[0]:inked[-1] + 1] if inked.size else cell[:, 12:16])
    parts.append(np.zeros((28, GAP), np.float32))
  return np.concatenate(parts, axis=1).astype(np.float32)


def turning_frames(image: np.ndarray, step_degrees: int = 10,
                   scale: int = 3) -> list[Image.Image]:
  """Frames of `image` (ink 1) turning 0° → 180° → 0°, dark ink on white."""
  height, width = image.shape
  side = int(np.ceil(np.hypot(height, width)))  # room for every angle
  canvas = np.zeros((side, side), np.float32)
  top, left = (side - height) // 2, (side - width) // 2
  canvas[top:top + height, left:left + width] = image
  page = Image.fromarray(np.uint8(255 * (1 - canvas)), mode='L').resize(
      (side * scale, side * scale), Image.Resampling.BICUBIC)
  angles = list(range(0, 181, step_degrees))
  angles += angles[-2:0:-1]
  return [page.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=255)
          for angle in angles]


def write_gif(path, frames: list[Image.Image]) -> None:
  with io.atomic_path(path) as tmp:
    frames[0].save(tmp, format='GIF', save_all=True, append_images=frames[1:],
                   duration=60, loop=0)


def run_experiment(config: ml_collections.ConfigDict, workspace: io.Workspace,
                   name: str) -> None:
  upright = check_number('upright', config.upright)
  rotated = check_number('rotated', config.rotated)
  pairs = cell_pairs(upright, rotated)
  generated = generators.generate(config, pairs, workspace)
  image = compose(generated.images)
  out_dir = workspace.output_dir(name)
  io.write_npz(out_dir / 'number.npz', image=image, images=generated.images,
               pairs=pairs.astype(np.int64))
  plots.number_figure(out_dir / 'number.png', image, upright, rotated,
                      np.minimum(generated.p_upright, generated.p_rotated))
  write_gif(out_dir / 'number.gif', turning_frames(image))
  logging.info('Wrote %s.', out_dir)
  confidences = np.minimum(generated.p_upright, generated.p_rotated)
  print(f'{name}: {upright} that turns into {rotated}; generator min confidence per '
        f'digit {" ".join(f"{c:.2f}" for c in confidences)}; outputs in {out_dir}')
