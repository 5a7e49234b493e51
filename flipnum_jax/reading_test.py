"""The reading test: blind readers say which digit each view shows.

A test is every view of its inputs (each pairs file's images upright, and turned
180°, as separate trials) mixed with controls: real test digits, whose answer is
their label, and catch trials (uniform noise, two real digits drawn over each other)
whose right answer is "can't tell". Each rater sees the trials one at a time in an
order of their own (seeded by their name), under one instruction per test:
`forced` or `confident` (see `INSTRUCTIONS`). Nothing shown hints at the intended
digit, the pair, the input or the view.

Two forms of the same test, both in `<workdir>/<experiment>/`:
- `page`: a local web server (standard library) on 127.0.0.1; every answer is saved
  at once, atomically, to `readings/<rater>.json`, so a reload resumes and stopping
  the server loses nothing answered.
- `sheets`: numbered contact sheets (PNG) and an answer template per rater, in
  `sheets/<rater>/`; the filled-in template, copied to `readings/<rater>.txt`, is
  read back by `evaluate` as the same readings.

`test.npz` (the trials and their key) and `test.json` (inputs and hash) describe the
test; `evaluate --config.readings=<that folder>` scores it.
"""

import dataclasses
import hashlib
import http.server
import json
import pathlib
import re
import threading
from typing import Any
import urllib.parse

import ml_collections
import numpy as np
from PIL import Image
from PIL import ImageDraw
from PIL import ImageFont

from flipnum_jax import data
from flipnum_jax import exchange
from flipnum_jax import gallery
from flipnum_jax import io
from flipnum_jax.errors import ConfigError
from flipnum_jax.errors import DataError

INSTRUCTIONS = {
    'forced': 'Which digit does this image most look like? Answer "can\'t tell" only '
              'if it looks like no digit at all.',
    'confident': 'Which digit do you read in this image without hesitation? Answer '
                 '"can\'t tell" whenever you are not sure: a "can\'t tell" is better '
                 'than a guess.',
}
CANT_TELL = 10  # the answer code of "can't tell" ('?'); 0–9 are the digits
UNANSWERED = -1
REAL_CONTROL = -1  # `source` of a real-digit control trial
NOISE = -2  # `source` of a catch trial of uniform noise
OVERLAY = -3  # `source` of a catch trial of two real digits drawn over each other
NOT_A_DIGIT = -1  # the `digit` of both kinds of catch trial
# The catch trials whose right answer is "can't tell" under each instruction. Under
# `forced` a reader names the digit an image most looks like, and two digits drawn
# over each other do look like a digit (either one): only noise is then a catch.
CANT_TELL_CATCHES = {'forced': (NOISE,), 'confident': (NOISE, OVERLAY)}
_RATER_NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9_-]{0,39}')


@dataclasses.dataclass(frozen=True)
class Test:
  """The trials of a reading test and their key (all arrays of length T).

  images: the view as shown, float32 (T, 28, 28), 1 = ink. source: the input's
  index, or REAL_CONTROL / NOISE / OVERLAY. item: the image's index in its input (or control
  set). view: 0 upright, 1 turned. digit: what a reader should answer, NOT_A_DIGIT
  for catch trials. inputs: per input, its name, path, images hash and pairs. seed:
  with each rater's name, it orders that rater's trials.
  """
  images: np.ndarray
  source: np.ndarray
  item: np.ndarray
  view: np.ndarray
  digit: np.ndarray
  inputs: tuple[dict[str, Any], ...]
  seed: int

  @property
  def hash(self) -> str:
    digest = hashlib.sha256()
    for array in (self.images, self.source, self.item, self.view, self.digit):
      digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(str(self.seed).encode())  # the seed orders every rater's trials
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class Readings:
  """One rater's answers: `answers[t]` is trial t's answer (0–9, CANT_TELL, or
  UNANSWERED)."""
  rater: str
  instruction: str
  form: str  # 'page' or 'sheets'
  answers: np.ndarray


def check_rater(name: str) -> str:
  """`name`, or a ConfigError unless it is a safe file name (letters, digits, - _)."""
  if not isinstance(name, str) or not _RATER_NAME.fullmatch(name):
    raise ConfigError(f'rater name {name!r} must be 1–40 letters, digits, - or _, '
                      'starting with a letter or digit')
  return name


def check_instruction(instruction: str) -> str:
  if instruction not in INSTRUCTIONS:
    raise ConfigError(f'instruction must be one of {sorted(INSTRUCTIONS)}, not '
                      f'{instruction!r}')
  return instruction


def catch_images(mnist: data.Mnist, rng: np.random.Generator, noise: int,
                 overlays: int) -> tuple[np.ndarray, np.ndarray]:
  """Catch trials: uniform noise, and a real digit with another real digit turned
  180° and shifted drawn over it (the max of the two inks): neither is one digit."""
  test = data.to_float(mnist.test_images)
  first = rng.choice(len(test), overlays, replace=False)
  second = rng.choice(len(test), overlays, replace=False)
  shifts = rng.integers(-3, 4, (overlays, 2))
  turned = np.stack([np.roll(test[j, ::-1, ::-1], tuple(s), (0, 1))
                     for j, s in zip(second, shifts)]) if overlays else np.zeros((0, 28, 28))
  return (rng.random((noise, 28, 28)).astype(np.float32),
          np.maximum(test[first], turned).astype(np.float32))


def typical_test_digits(mnist: data.Mnist, digit: int) -> np.ndarray:
  """Indices of the second half of the test set's `digit`s that lie nearer (in
  pixels) to the class's mean training digit than the class's median does: the more
  typical half. Atypical real digits (a 2 with a loop, a 9 close to an 8) are the
  ones confident readers decline: in the kit's fourteen reading tests up to test 22
  (1,350 confident answers to real digits), confident blind readers missed 9.4% of
  the controls from the farther half and 3.3% of those from the nearer half, so such
  digits flag a reader for the draw rather than for the reading."""
  half = len(mnist.test_labels) // 2
  index = half + np.flatnonzero(mnist.test_labels[half:] == digit)
  mean = data.to_float(mnist.train_images[mnist.train_labels == digit]).mean(0)
  distance = ((data.to_float(mnist.test_images[index]) - mean) ** 2).sum((1, 2))
  return index[distance <= np.median(distance)]


def real_controls(mnist: data.Mnist, rng: np.random.Generator,
                  count: int) -> tuple[np.ndarray, np.ndarray]:
  """`count` real test digits, as even over 0–9 as `count` allows, drawn from the
  more typical half of each class in the second half of the test set
  (`typical_test_digits`; the natural-flip control takes the first digits)."""
  labels = np.arange(count) % 10
  typical = {d: typical_test_digits(mnist, d) for d in np.unique(labels)}
  index = np.array([rng.choice(typical[d]) for d in labels], np.int64)
  return data.to_float(mnist.test_images[index]), mnist.test_labels[index]


def build_test(inputs: dict[str, tuple[np.ndarray, np.ndarray, str]], mnist: data.Mnist,
               config: ml_collections.ConfigDict) -> Test:
  """The trials: both views of every input image, then the controls (the order of
  trials here is the key's; each rater's order is `rater_order`)."""
  rng = np.random.default_rng(config.seed)
  parts, described = [], []
  for index, (name, (images, pairs, path)) in enumerate(inputs.items()):
    n = len(images)
    parts.append((np.concatenate([images, images[:, ::-1, ::-1]]),
                  np.full(2 * n, index), np.tile(np.arange(n), 2),
                  np.repeat([0, 1], n), np.concatenate([pairs[:, 0], pairs[:, 1]])))
    described.append({'name': name, 'path': path, 'images_sha256': exchange.images_hash(images),
                      'pairs': pairs.tolist()})
  real_images, real_labels = real_controls(mnist, rng, config.real_digits)
  parts.append((real_images, np.full(len(real_labels), REAL_CONTROL),
                np.arange(len(real_labels)), np.zeros(len(real_labels)), real_labels))
  for kind, catches in zip((NOISE, OVERLAY), catch_images(
      mnist, rng, config.noise_catch, config.overlay_catch)):
    parts.append((catches, np.full(len(catches), kind), np.arange(len(catches)),
                  np.zeros(len(catches)), np.full(len(catches), NOT_A_DIGIT)))
  images, source, item, view, digit = (np.concatenate(column) for column in zip(*parts))
  return Test(images.astype(np.float32), source.astype(np.int64), item.astype(np.int64),
              view.astype(np.int64), digit.astype(np.int64), tuple(described), config.seed)


def save_test(test_dir: pathlib.Path, test: Test) -> None:
  io.write_npz(test_dir / 'test.npz', images=test.images, source=test.source,
               item=test.item, view=test.view, digit=test.digit)
  io.write_json(test_dir / 'test.json', {'hash': test.hash, 'trials': len(test.images),
                                         'seed': test.seed, 'inputs': list(test.inputs)})


def load_test(test_dir: pathlib.Path) -> Test:
  """The test saved in `test_dir`, or a DataError if it is missing or damaged."""
  if not (test_dir / 'test.npz').is_file() or not (test_dir / 'test.json').is_file():
    raise DataError(f'{test_dir} holds no reading test (test.npz, test.json): run '
                    '`python run.py --experiment=reading_test` first')
  arrays = exchange.read_npz(test_dir / 'test.npz',
                             ('images', 'source', 'item', 'view', 'digit'), 'a reading test')
  try:
    described = json.loads((test_dir / 'test.json').read_text())
    test = Test(*arrays, inputs=tuple(described['inputs']), seed=int(described['seed']))
    recorded = described['hash']
  except (ValueError, KeyError, TypeError) as e:
    raise DataError(f'{test_dir / "test.json"} is damaged ({e})') from None
  if test.hash != recorded:
    raise DataError(f'{test_dir}: test.npz does not match the hash in test.json')
  return test


def rater_order(test: Test, rater: str) -> np.ndarray:
  """The rater's own shuffled order of the trials (a permutation of 0..T-1)."""
  rater_id = int.from_bytes(hashlib.sha256(rater.encode()).digest()[:8], 'little')
  return np.random.default_rng([test.seed, rater_id]).permutation(len(test.images))


def _answer_code(answer: str, where: str) -> int:
  if answer == '?':
    return CANT_TELL
  if len(answer) == 1 and answer.isdigit():
    return int(answer)
  raise DataError(f'{where}: the answer {answer!r} is not a digit 0–9 or ?')


def _answer_text(code: int) -> str:
  return '?' if code == CANT_TELL else str(code)


# --- the paper form ---------------------------------------------------------------

def contact_sheet(views: np.ndarray, first_number: int, columns: int,
                  scale: int) -> Image.Image:
  """One sheet: the views (ink dark on white, each upscaled `scale`×) in a grid,
  each under its number, and nothing else."""
  side = 28 * scale
  cell_w, cell_h, label_h = side + 24, side + 40, 30
  rows = -(-len(views) // columns)
  sheet = Image.new('L', (columns * cell_w + 16, rows * cell_h + 16), 255)
  draw = ImageDraw.Draw(sheet)
  font = ImageFont.load_default(size=22)
  for k, view in enumerate(views):
    x, y = 16 + (k % columns) * cell_w, 8 + (k // columns) * cell_h
    draw.text((x, y), str(first_number + k), fill=0, font=font)
    picture = Image.fromarray(np.uint8(np.round(255 * (1 - np.clip(view, 0, 1)))))
    sheet.paste(picture.resize((side, side), Image.Resampling.BILINEAR), (x, y + label_h))
    draw.rectangle((x - 1, y + label_h - 1, x + side, y + label_h + side), outline=190)
  return sheet


def answer_template(test: Test, rater: str, instruction: str) -> str:
  lines = [f'# reading test {test.hash[:16]}; rater {rater}; instruction {instruction}',
           f'# {INSTRUCTIONS[instruction]}',
           '# Write one answer after each number: a digit 0-9, or ? for "can\'t tell".',
           '# Keep these header lines.']
  return '\n'.join(lines + [f'{n}: ' for n in range(1, len(test.images) + 1)]) + '\n'


def write_sheets(test_dir: pathlib.Path, test: Test, raters: list[str], instruction: str,
                 config: ml_collections.ConfigDict) -> None:
  for rater in raters:
    folder = test_dir / 'sheets' / rater
    order = rater_order(test, rater)
    count = -(-len(order) // config.per_sheet)
    for s in range(count):
      chunk = order[s * config.per_sheet:(s + 1) * config.per_sheet]
      with io.atomic_path(folder / f'sheet_{s + 1:02d}.png') as tmp:
        contact_sheet(test.images[chunk], s * config.per_sheet + 1, config.columns,
                      config.scale).save(tmp, format='PNG')
    io.atomic_write(folder / 'answers.txt', answer_template(test, rater, instruction).encode())
    print(f'{rater}: {count} sheets and answers.txt in {folder}')


_HEADER = re.compile(r'#\s*reading test (\w+); rater (\S+); instruction (\w+)')
_LINE = re.compile(r'\s*(\d+)\s*:\s*(\S*)\s*')


def parse_sheet_answers(path: pathlib.Path, test: Test) -> Readings:
  """A filled-in answer template → the rater's readings (in trial order)."""
  text = path.read_text()
  header = _HEADER.match(text)
  if not header:
    raise DataError(f'{path}: the first line is not the template\'s header')
  test_id, rater, instruction = header.groups()
  if not test.hash.startswith(test_id):
    raise DataError(f'{path} answers another reading test ({test_id}, not '
                    f'{test.hash[:16]}): other images')
  if rater != path.stem:
    raise DataError(f'{path}: its header names rater {rater!r}, its file name {path.stem!r}')
  if instruction not in INSTRUCTIONS:
    raise DataError(f'{path}: unknown instruction {instruction!r}')
  order = rater_order(test, rater)
  answers = np.full(len(order), UNANSWERED, np.int64)
  for line_number, line in enumerate(text.splitlines(), 1):
    if not line.strip() or line.lstrip().startswith('#'):
      continue
    match = _LINE.fullmatch(line)
    if not match:
      raise DataError(f'{path}:{line_number}: expected NUMBER: DIGIT or NUMBER: ?, '
                      f'got {line.strip()!r}')
    number = int(match.group(1))
    if not 1 <= number <= len(order):
      raise DataError(f'{path}:{line_number}: there is no image {number} (1–{len(order)})')
    if match.group(2):
      trial = order[number - 1]
      if answers[trial] != UNANSWERED:
        raise DataError(f'{path}:{line_number}: image {number} is answered twice')
      answers[trial] = _answer_code(match.group(2), f'{path}:{line_number}')
  return Readings(rater, instruction, 'sheets', answers)


# --- the page form ----------------------------------------------------------------

def readings_path(test_dir: pathlib.Path, rater: str) -> pathlib.Path:
  return test_dir / 'readings' / f'{check_rater(rater)}.json'


def parse_page_readings(path: pathlib.Path, test: Test) -> Readings:
  """A `readings/<rater>.json` the page wrote → the rater's readings."""
  try:
    saved = json.loads(path.read_text())
    rater, instruction = saved['rater'], saved['instruction']
    given = [(int(a['trial']), str(a['answer'])) for a in saved['answers']]
    test_hash = saved['test_hash']
  except (ValueError, KeyError, TypeError) as e:
    raise DataError(f'{path} is not a readings file ({e})') from None
  if test_hash != test.hash:
    raise DataError(f'{path} holds readings of other images (test {test_hash[:16]}, '
                    f'not {test.hash[:16]})')
  if rater != path.stem or instruction not in INSTRUCTIONS:
    raise DataError(f'{path}: rater {rater!r} or instruction {instruction!r} is wrong')
  answers = np.full(len(test.images), UNANSWERED, np.int64)
  for trial, answer in given:
    if not 0 <= trial < len(answers):
      raise DataError(f'{path}: trial {trial} is not in the test')
    answers[trial] = _answer_code(answer, str(path))
  return Readings(rater, instruction, 'page', answers)


def load_readings(test_dir: pathlib.Path, test: Test) -> list[Readings]:
  """Every rater's readings in `<test_dir>/readings/` (`.json` from the page, `.txt`
  filled-in sheets), sorted by rater; a rater may have one of the two only."""
  folder = test_dir / 'readings'
  files = sorted(folder.glob('*.json')) + sorted(folder.glob('*.txt')) if folder.is_dir() else []
  readings, seen = [], set()
  for path in files:
    check_rater(path.stem)
    if path.stem in seen:
      raise DataError(f'{folder}: rater {path.stem} has both a .json and a .txt file')
    seen.add(path.stem)
    readings.append(parse_page_readings(path, test) if path.suffix == '.json'
                    else parse_sheet_answers(path, test))
  return sorted(readings, key=lambda r: r.rater)


class Session:
  """The server's state: the test, the instruction, and one lock so that answers
  from several tabs or raters are written one at a time."""

  def __init__(self, test_dir: pathlib.Path, test: Test, instruction: str):
    self.test_dir, self.test, self.instruction = test_dir, test, instruction
    self.lock = threading.Lock()

  def _saved(self, rater: str) -> dict[str, Any]:
    path = readings_path(self.test_dir, rater)
    if not path.is_file():
      return {'rater': rater, 'instruction': self.instruction, 'test_hash': self.test.hash,
              'answers': []}
    saved = json.loads(path.read_text())
    if saved.get('test_hash') != self.test.hash:
      raise ConfigError(f'{rater} has readings of another test here; choose another name')
    if saved.get('instruction') != self.instruction:
      raise ConfigError(f'{rater} read this test under the {saved.get("instruction")} '
                        'instruction; choose another name')
    return saved

  def start(self, rater: str) -> dict[str, Any]:
    """What the page needs: the instruction, the rater's views in order, how many
    are answered (a reload resumes there)."""
    with self.lock:
      saved = self._saved(check_rater(rater))
    order = rater_order(self.test, rater)
    return {'instruction': INSTRUCTIONS[self.instruction], 'total': len(order),
            'answered': len(saved['answers']),
            'images': [gallery.png_data_uri(self.test.images[t]) for t in order]}

  def answer(self, rater: str, position: int, answer: str, milliseconds: int) -> int:
    """Saves the answer to the rater's `position`-th view; returns how many are
    answered. Answers come in order: a position other than the next is refused."""
    with self.lock:
      saved = self._saved(check_rater(rater))
      if position != len(saved['answers']):
        raise ConfigError(f'expected the answer to view {len(saved["answers"]) + 1}, '
                          f'got view {position + 1}')
      order = rater_order(self.test, rater)
      if position >= len(order):
        raise ConfigError('the test is finished')
      try:
        code = _answer_code(answer, 'answer')
      except DataError as e:
        raise ConfigError(str(e)) from None
      saved['answers'].append({'position': position, 'trial': int(order[position]),
                               'answer': _answer_text(code), 'ms': int(milliseconds)})
      io.write_json(readings_path(self.test_dir, rater), saved)
      return len(saved['answers'])


_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>Reading test</title>
<link rel="icon" href="data:,">
<style>
body { font-family: sans-serif; margin: 2em auto; max-width: 40em; color: #222; text-align: center; }
#view { width: 336px; height: 336px; border: 1px solid #ccc; display: block; margin: 1em auto; }
#answers button { font-size: 24px; width: 3em; height: 2.2em; margin: 3px; }
#answers button.cant { width: auto; padding: 0 0.8em; }
#bar { height: 10px; background: #eee; margin: 1em 0; } #fill { height: 10px; background: #4a7; width: 0; }
#error { color: #b22; } .hidden { display: none; }
</style></head><body>
<h1>Reading test</h1>
<div id="intro">
<p>You will see handwritten-looking images, one at a time. For each, answer with a
button or a key (0–9; <kbd>?</kbd> or space for "can't tell").</p>
<p><label>Your name (letters, digits, - or _): <input id="rater" maxlength="40"></label>
<button id="begin">Start</button></p></div>
<div id="status" class="hidden"><p id="instruction"></p>
<div id="bar"><div id="fill"></div></div><p id="progress"></p></div>
<div id="test" class="hidden">
<img id="view" alt="the image to read">
<div id="answers"></div></div>
<p id="done" class="hidden">Done: every image is answered. Thank you.</p>
<p id="error"></p>
<script>
var rater = new URLSearchParams(location.search).get('rater');
var state = null, shownAt = 0, busy = false;
function $(id) { return document.getElementById(id); }
function fail(message) { $('error').textContent = message; }
function show() {
  var n = state.answered;
  $('fill').style.width = (100 * n / state.total) + '%';
  $('progress').textContent = n + ' of ' + state.total + ' answered';
  if (n >= state.total) { $('test').classList.add('hidden'); $('done').classList.remove('hidden'); return; }
  $('view').src = state.images[n]; shownAt = Date.now();
}
function send(answer) {
  if (!state || busy || state.answered >= state.total) return;
  busy = true;
  fetch('api/answer', {method: 'POST', headers: {'Content-Type': 'application/json'},
    body: JSON.stringify({rater: rater, position: state.answered, answer: answer,
                          ms: Date.now() - shownAt})})
    .then(function (r) { return r.json(); })
    .then(function (reply) {
      busy = false;
      if (reply.error) { fail(reply.error); return; }
      fail(''); state.answered = reply.answered; show();
    }).catch(function (e) { busy = false; fail('not saved: ' + e); });
}
['0','1','2','3','4','5','6','7','8','9','?'].forEach(function (a) {
  var b = document.createElement('button');
  b.textContent = a === '?' ? "can't tell" : a; b.dataset.answer = a;
  if (a === '?') b.className = 'cant';
  b.addEventListener('click', function () { send(a); });
  $('answers').appendChild(b);
});
document.addEventListener('keydown', function (e) {
  if (!state) return;
  if (/^[0-9]$/.test(e.key)) send(e.key);
  else if (e.key === '?' || e.key === ' ') { e.preventDefault(); send('?'); }
});
$('begin').addEventListener('click', function () {
  location.search = '?rater=' + encodeURIComponent($('rater').value.trim());
});
if (rater) {
  $('intro').classList.add('hidden');
  fetch('api/start?rater=' + encodeURIComponent(rater)).then(function (r) { return r.json(); })
    .then(function (reply) {
      if (reply.error) { $('intro').classList.remove('hidden'); fail(reply.error); return; }
      state = reply; $('instruction').textContent = state.instruction;
      $('status').classList.remove('hidden'); $('test').classList.remove('hidden'); show();
    }).catch(function (e) { fail('the server does not answer: ' + e); });
}
</script></body></html>
"""


def make_server(session: Session, port: int) -> http.server.ThreadingHTTPServer:
  """A server on 127.0.0.1:`port` (0 = any free port) for the session's page."""

  class Handler(http.server.BaseHTTPRequestHandler):

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
      self.send_response(status)
      self.send_header('Content-Type', content_type)
      self.send_header('Content-Length', str(len(body)))
      self.send_header('Cache-Control', 'no-store')
      self.end_headers()
      self.wfile.write(body)

    def _json(self, status: int, obj: dict[str, Any]) -> None:
      self._reply(status, json.dumps(obj).encode(), 'application/json')

    def do_GET(self):  # pylint: disable=invalid-name
      url = urllib.parse.urlsplit(self.path)
      if url.path == '/':
        self._reply(200, _PAGE.encode(), 'text/html; charset=utf-8')
      elif url.path == '/api/start':
        rater = urllib.parse.parse_qs(url.query).get('rater', [''])[0]
        try:
          self._json(200, session.start(rater))
        except ConfigError as e:
          self._json(400, {'error': str(e)})
      else:
        self._json(404, {'error': 'not found'})

    def do_POST(self):  # pylint: disable=invalid-name
      if self.path != '/api/answer':
        self._json(404, {'error': 'not found'})
        return
      try:
        body = json.loads(self.rfile.read(int(self.headers.get('Content-Length', 0))))
        answered = session.answer(str(body['rater']), int(body['position']),
                                  str(body['answer']), int(body.get('ms', 0)))
        self._json(200, {'answered': answered})
      except (ValueError, KeyError, TypeError) as e:
        self._json(400, {'error': f'bad request ({e})'})
      except ConfigError as e:
        self._json(400, {'error': str(e)})

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
      del format, args  # answers are in the readings files; keep the terminal quiet

  try:
    return http.server.ThreadingHTTPServer(('127.0.0.1', port), Handler)
  except OSError as e:
    raise ConfigError(f'cannot serve on 127.0.0.1:{port} ({e.strerror}); choose '
                      'another --config.port') from None


# --- the job ----------------------------------------------------------------------

def prepare(config: ml_collections.ConfigDict, workspace: io.Workspace,
            name: str) -> tuple[pathlib.Path, Test]:
  """Builds the test from the config's inputs and saves it, unless the same test is
  already there; a different test is refused while readings of the old one exist."""
  check_instruction(config.instruction)
  if config.format not in ('page', 'sheets'):
    raise ConfigError(f"format must be 'page' or 'sheets', not {config.format!r}")
  raters = [check_rater(r.strip()) for r in config.raters.split(',') if r.strip()]
  if config.format == 'sheets' and not raters:
    raise ConfigError('sheets need rater names: --config.raters=NAME[,NAME…]')
  if min(config.real_digits, config.per_sheet, config.columns, config.scale) < 1 or \
      min(config.noise_catch, config.overlay_catch, config.natural_flips_per_digit) < 0:
    raise ConfigError('real_digits, per_sheet, columns and scale must be positive, '
                      'natural_flips_per_digit and the catch counts not negative')
  default = str(workspace.output_dir('pairs') / exchange.PAIRS_FILE)
  inputs = {input_name: (*exchange.load_pairs_file(path), str(path))
            for input_name, path in exchange.named_paths(config.inputs or default,
                                                         'inputs').items()}
  mnist = workspace.mnist
  if config.natural_flips_per_digit:
    inputs['control: natural flips'] = (
        *data.natural_flips(mnist, config.natural_flips_per_digit), 'control')
  test = build_test(inputs, mnist, config)
  test_dir = workspace.output_dir(name)
  if (test_dir / 'test.json').is_file():
    old_hash = json.loads((test_dir / 'test.json').read_text()).get('hash')
    if old_hash != test.hash and any((test_dir / 'readings').glob('*')):
      raise ConfigError(f'{test_dir} holds readings of another test ({str(old_hash)[:16]}): '
                        'move them away, or use another --workdir')
  save_test(test_dir, test)
  for rater in raters:
    path = readings_path(test_dir, rater)
    if path.is_file() and json.loads(path.read_text()).get('instruction') != config.instruction:
      raise ConfigError(f'{path} holds readings under another instruction')
  if config.format == 'sheets':
    write_sheets(test_dir, test, raters, config.instruction, config)
  return test_dir, test


def run_experiment(config: ml_collections.ConfigDict, workspace: io.Workspace,
                   name: str) -> None:
  test_dir, test = prepare(config, workspace, name)
  counts = np.bincount(np.where(test.source >= 0, 0, -test.source), minlength=4)
  print(f'{name}: {len(test.images)} views ({counts[0]} from {len(test.inputs)} inputs, '
        f'{counts[1]} real digits, {counts[2]} noise and {counts[3]} overlay catch '
        f'trials), test {test.hash[:16]}, instruction {config.instruction}')
  if config.format == 'sheets':
    print(f'give each rater only sheets/<rater>/, then save the filled-in answers.txt as '
          f'{test_dir}/readings/<rater>.txt and run evaluate --config.readings={test_dir}')
    return
  server = make_server(Session(test_dir, test, config.instruction), config.port)
  print(f'{name}: open http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops; every '
        f'answer is already saved in {test_dir / "readings"})', flush=True)
  try:
    server.serve_forever()
  except KeyboardInterrupt:
    pass
  finally:
    server.server_close()
