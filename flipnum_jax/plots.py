"""Pictures people look at: the pair grid with its guides, and the dreams panel."""

import os

import matplotlib
matplotlib.use('Agg')  # files only; no display is needed or assumed
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np

from flipnum_jax import io

_GAP = 8  # pixels between cells, room for the number under each
_CELL = 28 + _GAP
_GUIDE_INK = np.array([0.1, 0.3, 0.8])  # guides are blue, generated cells black


def _ink_to_rgb(image: np.ndarray, ink: np.ndarray) -> np.ndarray:
  """Image in [0, 1] (1 = ink) → RGB on a white page, the ink in colour `ink`."""
  alpha = np.clip(image, 0.0, 1.0)[..., None]
  return 1.0 - alpha * (1.0 - ink)


def _save(fig: plt.Figure, path: str | os.PathLike) -> None:
  with io.atomic_path(path) as tmp:
    fig.savefig(tmp, format='png', dpi=100)
  plt.close(fig)


def pair_grid(path: str | os.PathLike, images: np.ndarray, upright: np.ndarray,
              rotated: np.ndarray, confidences: np.ndarray,
              upright_guides: np.ndarray, rotated_guides: np.ndarray,
              title: str, turned: bool = False) -> None:
  """Saves the grid of pair images, rows = upright digit, columns = turned digit.

  images: (len(upright) * len(rotated), 28, 28), a-major. The left column shows a
  real example of each row's digit and the top row one of each column's digit, as
  they should appear in this view; `turned=True` draws every image turned 180°.
  confidences: per image, the number printed under it.
  """
  rows, cols = len(upright), len(rotated)
  turn = (lambda x: x[..., ::-1, ::-1]) if turned else (lambda x: x)
  canvas = np.ones(((rows + 1) * _CELL, (cols + 1) * _CELL, 3))
  put = lambda r, c, rgb: canvas.__setitem__(
      (slice(r * _CELL, r * _CELL + 28), slice(c * _CELL, c * _CELL + 28)), rgb)
  black = np.zeros(3)
  for i in range(rows):  # The guide reads as a in the upright view.
    guide = upright_guides[i] if not turned else upright_guides[i][::-1, ::-1]
    put(i + 1, 0, _ink_to_rgb(guide, _GUIDE_INK))
  for j in range(cols):  # The guide reads as b in the turned view.
    guide = rotated_guides[j][::-1, ::-1] if not turned else rotated_guides[j]
    put(0, j + 1, _ink_to_rgb(guide, _GUIDE_INK))
  for k, image in enumerate(turn(images)):
    put(k // cols + 1, k % cols + 1, _ink_to_rgb(image, black))

  fig, ax = plt.subplots(figsize=(0.9 * (cols + 1) + 0.6, 0.9 * (rows + 1) + 0.9))
  ax.imshow(canvas, interpolation='nearest')
  for i, a in enumerate(upright):
    ax.text(-4, (i + 1) * _CELL + 14, str(a), ha='right', va='center', fontsize=12,
            color=_GUIDE_INK)
  for j, b in enumerate(rotated):
    ax.text((j + 1) * _CELL + 14, -3, str(b), ha='center', va='bottom', fontsize=12,
            color=_GUIDE_INK)
  for k, confidence in enumerate(confidences):
    ax.text((k % cols + 1) * _CELL + 14, (k // cols + 1) * _CELL + 28.5,
            f'{confidence:.2f}', ha='center', va='top', fontsize=6, color='0.35')
  ax.set_axis_off()
  view = 'every cell turned 180°: read the column digit' if turned else (
      'upright: read the row digit; turn the page for the column digit')
  ax.set_title(f'{title}\n{view}; under each cell: min(p_upright, p_turned)',
               fontsize=9, pad=22)
  fig.tight_layout()
  _save(fig, path)


def dreams_panel(path: str | os.PathLike, rows: list[tuple[str, np.ndarray, np.ndarray]],
                 digits: np.ndarray) -> None:
  """Saves rows of one image per digit; each row is (label, images, confidences)."""
  fig, axes = plt.subplots(len(rows), len(digits),
                           figsize=(1.1 * len(digits) + 1.5, 1.35 * len(rows)),
                           squeeze=False)
  for r, (label, images, confidences) in enumerate(rows):
    for c, digit in enumerate(digits):
      ax = axes[r, c]
      ax.imshow(1.0 - images[c], cmap='gray', vmin=0, vmax=1, interpolation='nearest')
      ax.set_xticks([])
      ax.set_yticks([])
      ax.set_xlabel(f'p({digit})={confidences[c]:.2f}', fontsize=7)
      if r == 0:
        ax.set_title(str(digit), fontsize=11)
    axes[r, 0].set_ylabel(label, fontsize=8)
  fig.tight_layout()
  _save(fig, path)


def readable_heatmap(path: str | os.PathLike, pairs: np.ndarray, readable: np.ndarray,
                     values_per_pair: np.ndarray, title: str,
                     value_label: str = "judges' mean min(p_a, p_b)",
                     reader: str = 'the panel') -> None:
  """Rows a, columns b: colour = `values_per_pair` (in [0, 1]); ✓ = `reader` reads
  the pair both ways, · = it does not."""
  upright, rotated = np.unique(pairs[:, 0]), np.unique(pairs[:, 1])
  values = np.full((len(upright), len(rotated)), np.nan)
  marks = np.zeros_like(values, bool)
  for (a, b), ok, p in zip(pairs, readable, values_per_pair):
    i, j = np.searchsorted(upright, a), np.searchsorted(rotated, b)
    values[i, j], marks[i, j] = p, ok
  fig, ax = plt.subplots(figsize=(0.55 * len(rotated) + 2.2, 0.55 * len(upright) + 1.4))
  image = ax.imshow(values, cmap='viridis', vmin=0, vmax=1)
  for i in range(len(upright)):
    for j in range(len(rotated)):
      if not np.isnan(values[i, j]):
        ax.text(j, i, '✓' if marks[i, j] else '·', ha='center', va='center',
                color='black' if values[i, j] > 0.6 else 'white', fontsize=11)
  ax.set_xticks(range(len(rotated)), [str(b) for b in rotated])
  ax.set_yticks(range(len(upright)), [str(a) for a in upright])
  ax.set_xlabel('b: read turned 180°')
  ax.set_ylabel('a: read upright')
  ax.set_title(f'{title}\n✓ read both ways by {reader}: {int(readable.sum())}/{len(pairs)}',
               fontsize=9)
  fig.colorbar(image, ax=ax, label=value_label, shrink=0.8)
  fig.tight_layout()
  _save(fig, path)


def number_figure(path: str | os.PathLike, image: np.ndarray, upright: str,
                  rotated: str, confidences: np.ndarray) -> None:
  """The composed number as it stands and turned 180°, labelled with both readings."""
  fig, axes = plt.subplots(2, 1, figsize=(max(4.5, 0.5 + image.shape[1] / 20), 3.6))
  for ax, view, label in ((axes[0], image, f'upright: reads {upright}'),
                          (axes[1], image[::-1, ::-1], f'turned 180°: reads {rotated}')):
    ax.imshow(1.0 - view, cmap='gray', vmin=0, vmax=1, interpolation='nearest')
    ax.set_title(label, fontsize=11)
    ax.set_axis_off()
  fig.suptitle('generator min(p_upright, p_turned) per digit: '
               + ' '.join(f'{c:.2f}' for c in confidences), fontsize=7, y=0.02)
  fig.tight_layout()
  _save(fig, path)


def sample_grid(path: str | os.PathLike, images: np.ndarray, per_row: int,
                title: str) -> None:
  """Saves plain samples, row d holding `per_row` samples of digit d (labelled)."""
  rows = len(images) // per_row
  canvas = np.ones((rows * _CELL, per_row * _CELL, 3))
  for k, image in enumerate(images):
    r, c = divmod(k, per_row)
    canvas[r * _CELL:r * _CELL + 28, c * _CELL:c * _CELL + 28] = _ink_to_rgb(
        image, np.zeros(3))
  fig, ax = plt.subplots(figsize=(0.6 * per_row + 0.8, 0.6 * rows + 0.8))
  ax.imshow(canvas, interpolation='nearest')
  for r in range(rows):
    ax.text(-4, r * _CELL + 14, str(r), ha='right', va='center', fontsize=11,
            color=_GUIDE_INK)
  ax.set_axis_off()
  ax.set_title(title, fontsize=8)
  fig.tight_layout()
  _save(fig, path)


def candidate_grid(path: str | os.PathLike, candidates: np.ndarray, upright: np.ndarray,
                   rotated: np.ndarray, spread: np.ndarray, title: str,
                   per_line: int = 4) -> None:
  """Saves every candidate, upright, in the pair grid's layout: the cell of row a,
  column b holds that pair's K candidates (a-major, K consecutive per pair, up to
  `per_line` side by side), its candidate spread printed under it — so that a
  reader sees at once whether a pair's candidates differ at all."""
  rows, cols = len(upright), len(rotated)
  per_pair = len(candidates) // (rows * cols)
  lines = -(-per_pair // per_line)
  across = min(per_pair, per_line)
  cell_w, cell_h = across * 29 + _GAP, lines * 29 + _GAP
  canvas = np.ones((rows * cell_h, cols * cell_w, 3))
  for k, image in enumerate(candidates):
    pair, index = divmod(k, per_pair)
    (r, c), (line, place) = divmod(pair, cols), divmod(index, per_line)
    top, left = r * cell_h + line * 29, c * cell_w + place * 29
    canvas[top:top + 28, left:left + 28] = _ink_to_rgb(image, np.zeros(3))
  fig, ax = plt.subplots(figsize=(cols * cell_w / 60 + 0.8, rows * cell_h / 60 + 1.0))
  ax.imshow(canvas, interpolation='nearest')
  for r, a in enumerate(upright):
    ax.text(-4, r * cell_h + lines * 14, str(a), ha='right', va='center', fontsize=11,
            color=_GUIDE_INK)
  for c, b in enumerate(rotated):
    ax.text(c * cell_w + across * 14, -4, str(b), ha='center', va='bottom', fontsize=11,
            color=_GUIDE_INK)
  for pair, value in enumerate(spread):
    r, c = divmod(pair, cols)
    ax.text(c * cell_w + across * 14, r * cell_h + lines * 29 + 1, f'{value:.3f}',
            ha='center', va='top', fontsize=6, color='0.3')
  ax.set_axis_off()
  ax.set_title(title, fontsize=9, pad=16)  # above the column labels
  fig.tight_layout()
  _save(fig, path)
