"""Downloading MNIST into the cache, for real, from mirrors on 127.0.0.1.

Each mirror is a local HTTP server holding copies of the real `.gz` files (from the
folder that `mnist_dir` finds), optionally damaged; nothing here reaches the internet,
and tensorflow-datasets is kept out of reach unless a test stands in for it.
"""

import contextlib
import gzip
import http.server
import logging as pylogging
import socket
import threading

import numpy as np
import pytest

from flipnum_jax import data
from flipnum_jax.errors import DataError

NAMES = sorted(f'{stem}.gz' for stem in data.IDX_MD5)


@pytest.fixture(scope='session')
def real_files(mnist_dir) -> dict[str, bytes]:
  """The four real files as a mirror serves them: name → gzipped bytes."""
  files = {}
  for stem in data.IDX_MD5:
    gz = mnist_dir / f'{stem}.gz'
    files[f'{stem}.gz'] = (gz.read_bytes() if gz.is_file()
                           else gzip.compress((mnist_dir / stem).read_bytes()))
  return files


@contextlib.contextmanager
def mirror(files: dict[str, bytes], truncate: tuple[str, ...] = (),
           stall: tuple[str, ...] = ()):
  """Serves `files` at http://127.0.0.1:PORT/NAME (404 for other names) and yields
  (base URL, list of the names requested). A name in `truncate` is sent with its full
  Content-Length but only half its bytes, then the connection is closed; a name in
  `stall` gets its headers and a few bytes, then nothing until the server stops."""
  requests = []
  release = threading.Event()

  class Handler(http.server.BaseHTTPRequestHandler):

    def do_GET(self):  # pylint: disable=invalid-name
      name = self.path.lstrip('/')
      requests.append(name)
      if name not in files:
        self.send_error(404)
        return
      body = files[name]
      self.send_response(200)
      self.send_header('Content-Length', str(len(body)))
      self.end_headers()
      if name in truncate:
        self.wfile.write(body[:len(body) // 2])
        self.close_connection = True
      elif name in stall:
        self.wfile.write(body[:100])
        self.wfile.flush()
        release.wait(10)
      else:
        self.wfile.write(body)

    def log_message(self, *args):  # quiet
      pass

  server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
  thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
  thread.start()
  try:
    yield f'http://127.0.0.1:{server.server_port}/', requests
  finally:
    release.set()
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def dead_mirror() -> str:
  """A base URL on a port that nothing listens on: connection refused."""
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
  return f'http://127.0.0.1:{port}/'


@pytest.fixture
def cache(tmp_path, monkeypatch):
  """No folder named, XDG_CACHE_HOME in tmp_path, tensorflow-datasets out of reach;
  the cache folder that `load_mnist` then uses."""
  monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
  monkeypatch.setattr(data, '_tfds_can_prepare', lambda: False)
  return tmp_path / 'xdg' / 'flipnum_jax' / 'mnist'


def listing(folder) -> list[str]:
  """Every entry of `folder`, hidden temporary files included."""
  return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def assert_real_mnist(mnist: data.Mnist) -> None:
  assert mnist.train_images.shape == (60000, 28, 28)
  assert mnist.test_images.shape == (10000, 28, 28)
  assert mnist.train_images.dtype == np.uint8
  assert mnist.train_labels.shape == (60000,) and mnist.test_labels.shape == (10000,)
  assert mnist.train_labels[:5].tolist() == [5, 0, 4, 1, 9]


def damaged(body: bytes, how: str) -> bytes:
  if how == 'gzip bytes':  # bytes changed in transit
    body = bytearray(body)
    for i in range(len(body) // 2, len(body) // 2 + 8):
      body[i] ^= 0xFF
    return bytes(body)
  raw = bytearray(gzip.decompress(body))  # a valid file of the wrong data
  raw[100] = (raw[100] + 1) % 10
  return gzip.compress(bytes(raw))


def test_cache_dir_follows_xdg_else_home(monkeypatch, tmp_path):
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
  assert data.cache_dir() == tmp_path / 'xdg' / 'flipnum_jax' / 'mnist'
  monkeypatch.delenv('XDG_CACHE_HOME')
  monkeypatch.setenv('HOME', str(tmp_path / 'home'))
  assert data.cache_dir() == tmp_path / 'home' / '.cache' / 'flipnum_jax' / 'mnist'


def test_a_good_mirror_fills_the_cache_once(cache, real_files, caplog):
  caplog.set_level(pylogging.INFO)
  with mirror(real_files) as (url, requests):
    assert_real_mnist(data.load_mnist(mirrors=(url,)))
    assert sorted(requests) == NAMES
    assert listing(cache) == NAMES  # the four files, no temporary file
    for name in NAMES:
      assert (cache / name).read_bytes() == real_files[name]
    for name in NAMES:  # the progress says the bytes
      assert f'{name}: {len(real_files[name])} bytes, complete' in caplog.text
    assert_real_mnist(data.load_mnist(mirrors=(url,)))
    assert len(requests) == 4  # the second load asked nothing


def test_a_dead_mirror_is_logged_and_the_next_one_used(cache, real_files, dead_mirror,
                                                       caplog):
  with mirror(real_files) as (url, requests):
    assert_real_mnist(data.load_mnist(mirrors=(dead_mirror, url)))
  assert sorted(requests) == NAMES
  failures = [r.getMessage() for r in caplog.records
              if r.levelno == pylogging.WARNING and dead_mirror in r.getMessage()]
  assert len(failures) == 4, caplog.text  # one line per file
  assert all('URLError' in f and 'trying the next one' in f for f in failures)
  assert listing(cache) == NAMES


@pytest.mark.parametrize('how', ['gzip bytes', 'uncompressed bytes'])
def test_a_corrupt_file_is_rejected_and_the_next_mirror_used(cache, real_files, how,
                                                             caplog):
  bad = dict(real_files)
  bad['t10k-labels-idx1-ubyte.gz'] = damaged(bad['t10k-labels-idx1-ubyte.gz'], how)
  with mirror(bad) as (bad_url, bad_requests), mirror(real_files) as (url, requests):
    assert_real_mnist(data.load_mnist(mirrors=(bad_url, url)))
  assert sorted(bad_requests) == NAMES
  assert requests == ['t10k-labels-idx1-ubyte.gz']  # only the rejected file, again
  assert f'{bad_url} failed for t10k-labels-idx1-ubyte.gz' in caplog.text
  assert listing(cache) == NAMES
  assert (cache / 't10k-labels-idx1-ubyte.gz').read_bytes() == real_files[
      't10k-labels-idx1-ubyte.gz']


def test_a_corrupt_file_and_no_other_mirror_leaves_nothing_untrusted(cache, real_files):
  bad = dict(real_files)
  bad['t10k-labels-idx1-ubyte.gz'] = damaged(bad['t10k-labels-idx1-ubyte.gz'],
                                             'uncompressed bytes')
  with mirror(bad) as (url, _):
    with pytest.raises(DataError, match='do not match the published MD5'):
      data.load_mnist(mirrors=(url,))
  # The three good files are kept; of the bad one, neither file nor temporary file.
  assert listing(cache) == sorted(set(NAMES) - {'t10k-labels-idx1-ubyte.gz'})


def test_an_interrupted_download_leaves_nothing_and_a_later_run_succeeds(cache,
                                                                         real_files):
  with mirror(real_files, truncate=('train-labels-idx1-ubyte.gz',)) as (url, _):
    total = len(real_files['train-labels-idx1-ubyte.gz'])
    with pytest.raises(DataError, match=f'stopped after {total // 2} of {total} bytes'):
      data.load_mnist(mirrors=(url,))
  assert listing(cache) == ['train-images-idx3-ubyte.gz']  # fetched before the cut
  with mirror(real_files) as (url, requests):
    assert_real_mnist(data.load_mnist(mirrors=(url,)))
  assert sorted(requests) == sorted(set(NAMES) - {'train-images-idx3-ubyte.gz'})
  assert listing(cache) == NAMES


def test_a_stalled_mirror_times_out_and_the_next_one_is_used(tmp_path, real_files,
                                                             caplog):
  name = 't10k-labels-idx1-ubyte.gz'
  with mirror(real_files, stall=(name,)) as (slow, _), mirror(real_files) as (url, _):
    path = data.fetch_idx(tmp_path, 't10k-labels-idx1-ubyte', mirrors=(slow, url),
                          timeout=0.5)
  assert path == tmp_path / name and path.read_bytes() == real_files[name]
  assert f'{slow} failed for {name}' in caplog.text and 'timed out' in caplog.text
  assert listing(tmp_path) == [name]


def test_all_mirrors_failing_is_a_one_line_error_saying_what_to_do(cache, dead_mirror):
  with mirror({}) as (empty, requests):  # answers 404 to everything
    with pytest.raises(DataError) as error:
      data.load_mnist(mirrors=(dead_mirror, empty))
  assert requests == ['train-images-idx3-ubyte.gz']  # stops at the first missing file
  message = str(error.value)
  assert '\n' not in message
  assert 'HTTP Error 404' in message  # the last mirror's reason
  assert 'FLIPNUM_DATA_DIR=FOLDER' in message and '--data_dir=FOLDER' in message
  assert all(name in message for name in NAMES)
  assert 'pip install -r requirements-tfds.txt' in message
  assert listing(cache) == []


def test_a_corrupt_cached_file_is_downloaded_again(cache, real_files):
  with mirror(real_files) as (url, requests):
    data.load_mnist(mirrors=(url,))
    (cache / 'train-labels-idx1-ubyte.gz').write_bytes(b'garbage')
    assert_real_mnist(data.load_mnist(mirrors=(url,)))
  assert requests.count('train-labels-idx1-ubyte.gz') == 2 and len(requests) == 5


def test_tensorflow_datasets_is_tried_only_when_every_mirror_fails(cache, real_files,
                                                                   dead_mirror,
                                                                   monkeypatch):
  sentinel = data.Mnist(*[np.zeros(1)] * 4)
  monkeypatch.setattr(data, 'load_tfds', lambda: sentinel)
  monkeypatch.setattr(data, '_tfds_can_prepare', lambda: True)
  assert data.load_mnist(mirrors=(dead_mirror,)) is sentinel
  with mirror(real_files) as (url, _):
    assert data.load_mnist(mirrors=(url,)) is not sentinel


def test_a_named_folder_that_is_unusable_never_falls_back(cache, real_files, tmp_path,
                                                          monkeypatch):
  with mirror(real_files) as (url, requests):
    with pytest.raises(DataError, match='does not exist'):
      data.load_mnist(str(tmp_path / 'nowhere'), mirrors=(url,))
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path / 'nowhere'))
    with pytest.raises(DataError, match='does not exist'):
      data.load_mnist(mirrors=(url,))
  assert requests == [] and listing(cache) == []
