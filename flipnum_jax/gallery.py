"""The gallery job: one self-contained web page of the flip digits.

Writes `<workdir>/gallery/index.html` with every image embedded (no network): the
10×10 grid of the `pairs` output with its guides, each cell turning 180° on hover or
click; the panel's verdict and the generator's confidence per pair and the method
table when `evaluate` has run; the flip number when `number` has run.
"""

import base64
import html
import io as std_io
import json

import ml_collections
import numpy as np
from PIL import Image

from flipnum_jax import data
from flipnum_jax import exchange
from flipnum_jax import io
from flipnum_jax.errors import ConfigError

_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table.grid { border-collapse: collapse; }
table.grid td { text-align: center; padding: 2px; font-size: 11px; color: #555; }
table.grid th { color: #1a4dcc; font-size: 15px; }
.cell img, .guide img { width: 56px; height: 56px; image-rendering: pixelated; }
.cell img { transition: transform 0.4s; cursor: pointer; }
.cell:hover img, .cell.turned img { transform: rotate(180deg); }
.ok { color: #1b7f2a; } .no { color: #b22; }
table.methods td, table.methods th { border: 1px solid #ccc; padding: 3px 8px; }
"""

_SCRIPT = """
document.querySelectorAll('.cell').forEach(function (cell) {
  cell.addEventListener('click', function () { cell.classList.toggle('turned'); });
});
"""


def png_data_uri(image: np.ndarray) -> str:
  """An ink image in [0, 1] as an embedded PNG (dark ink on white)."""
  buffer = std_io.BytesIO()
  Image.fromarray(np.uint8(np.round(255 * (1 - np.clip(image, 0, 1)))), mode='L').save(
      buffer, format='PNG')
  return 'data:image/png;base64,' + base64.b64encode(buffer.getvalue()).decode()


def build_page(images: np.ndarray, pairs: np.ndarray, upright_guides: np.ndarray,
               rotated_guides: np.ndarray, scores: dict | None,
               evaluation: dict | None, number_png: bytes | None) -> str:
  """The gallery's HTML for a pairs file (images a-major) and what else exists. The
  verdicts of `evaluation` are shown for these images only (matched by their hash,
  not by a name that another file may share)."""
  upright, rotated = np.unique(pairs[:, 0]), np.unique(pairs[:, 1])
  confidence = {(p['upright'], p['rotated']): p['min'] for p in (scores or {}).get('pairs', [])}
  shown = exchange.images_hash(images)
  judged = next((r for r in (evaluation or {}).get('inputs', {}).values()
                 if r.get('images_sha256') == shown), None)
  readable = {tuple(p) for p in judged['panel_both_ways_pairs']} if judged else None
  # Blind readers' majority, per instruction, on these images (when evaluate scored any).
  reader_results = (evaluation or {}).get('readers') or {}
  read_as = next((n for n, h in reader_results.get('inputs', {}).items() if h == shown), None)
  instructions = reader_results.get('instructions', {})
  read = {instruction: {tuple(p) for p in scored['inputs'][read_as]['both_ways_pairs']}
          for instruction, scored in instructions.items() if read_as}
  index = {(int(a), int(b)): k for k, (a, b) in enumerate(pairs)}
  rows = ['<tr><td></td>' + ''.join(
      f'<th><div class="guide"><img alt="real {b}, turned" '
      f'src="{png_data_uri(g[::-1, ::-1])}"></div>{b}</th>'
      for b, g in zip(rotated, rotated_guides)) + '</tr>']
  for a, guide in zip(upright, upright_guides):
    cells = [f'<th><div class="guide"><img alt="real {a}" src="{png_data_uri(guide)}">'
             f'</div>{a}</th>']
    for b in rotated:
      k = index[(int(a), int(b))]
      notes = []
      if (a, b) in confidence:
        notes.append(f'{confidence[(a, b)]:.2f}')
      for instruction, read_pairs in read.items():
        ok = (int(a), int(b)) in read_pairs
        notes.append(f'<span class="{"ok" if ok else "no"}" title="blind readers, '
                     f'{instruction}">{instruction[0]}{"✓" if ok else "✗"}</span>')
      if readable is not None:
        ok = (int(a), int(b)) in readable
        notes.append(f'<span class="{"ok" if ok else "no"}" title="judge panel">'
                     f'{"✓" if ok else "✗"}</span>')
      cells.append(f'<td><div class="cell" data-pair="{a},{b}" title="reads {a} upright, '
                   f'{b} turned"><img alt="{a} / {b}" src="{png_data_uri(images[k])}">'
                   f'</div>{" ".join(notes)}</td>')
    rows.append('<tr>' + ''.join(cells) + '</tr>')
  parts = ['<!DOCTYPE html><html><head><meta charset="utf-8"><title>flip digits</title>',
           f'<style>{_STYLE}</style></head><body><h1>Flip digits</h1>',
           '<p>Each image reads as the row digit upright and as the column digit turned '
           '180°. Hover over or click a cell to turn it. The headers are real '
           'MNIST digits, shown as each view should read. Under each cell: the '
           "generator's min(p_upright, p_turned)"
           + ''.join(f', {i[0]}✓ where the blind readers\' majority reads it both ways '
                     f'under the {i} instruction' for i in read)
           + (', and ✓ where the judge panel reads it both ways' if judged else '')
           + '.</p>', f'<table class="grid">{"".join(rows)}</table>']
  if evaluation and evaluation['inputs']:
    judges = sorted(next(iter(evaluation['inputs'].values()))['judges'])
    header = ''.join(f'<th>{html.escape(j)}</th>' for j in judges)
    reader_header = ''.join(f'<th>blind readers, {html.escape(i)}</th>' for i in instructions)
    lines = [f'<h2>Methods (both-ways rate)</h2><table class="methods"><tr><th>input</th>'
             f'{reader_header}<th>generator</th>{header}<th>panel</th></tr>']
    read_names = {h: n for n, h in reader_results.get('inputs', {}).items()}
    for input_name, result in evaluation['inputs'].items():
      generator = result['generator']['both'] if result['generator'] else None
      read_name = read_names.get(result.get('images_sha256'))  # the same images, read
      readers = ''.join(
          f'<td><b>{100 * scored["inputs"][read_name]["both"]:.0f}%</b></td>'
          if read_name else '<td>—</td>' for scored in instructions.values())
      cells = ''.join(f'<td>{100 * result["judges"][j]["both"]:.0f}%</td>' for j in judges)
      lines.append(f'<tr><td>{html.escape(input_name)}</td>{readers}<td>'
                   f'{"—" if generator is None else f"{100 * generator:.0f}%"}</td>{cells}'
                   f'<td><b>{100 * result["panel"]["both"]:.0f}%</b></td></tr>')
    parts.append(''.join(lines) + '</table>')
  if number_png:
    parts.append('<h2>A flip number</h2><img alt="flip number" src="data:image/png;base64,'
                 + base64.b64encode(number_png).decode() + '">')
  parts.append(f'<script>{_SCRIPT}</script></body></html>')
  return '\n'.join(parts)


def run_experiment(config: ml_collections.ConfigDict, workspace: io.Workspace,
                   name: str) -> None:
  source = workspace.output_dir(config.pairs_experiment)
  if not (source / exchange.PAIRS_FILE).is_file():
    raise ConfigError(f'{source / exchange.PAIRS_FILE} does not exist: run '
                      f'`python run.py --experiment={config.pairs_experiment}` first')
  images, pairs = exchange.load_pairs_file(source / exchange.PAIRS_FILE)
  number_png = workspace.output_dir('number') / 'number.png'
  evaluation = workspace.output_dir('evaluate') / 'evaluation.json'
  page = build_page(
      images, pairs, data.first_test_examples(workspace.mnist, np.unique(pairs[:, 0])),
      data.first_test_examples(workspace.mnist, np.unique(pairs[:, 1])),
      exchange.read_scores(source / exchange.SCORES_FILE),
      json.loads(evaluation.read_text()) if evaluation.is_file() else None,
      number_png.read_bytes() if number_png.is_file() else None)
  out = workspace.output_dir(name) / 'index.html'
  io.atomic_write(out, page.encode())
  print(f'{name}: open {out}')
