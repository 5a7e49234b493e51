import gzip
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds

from flipnum_jax import data
from flipnum_jax.errors import DataError


def idx_bytes(array: np.ndarray) -> bytes:
  header = bytes([0, 0, 0x08, array.ndim]) + b''.join(
      d.to_bytes(4, 'big') for d in array.shape)
  return header + array.astype(np.uint8).tobytes()


def test_parse_idx_round_trip():
  images = np.arange(2 * 28 * 28, dtype=np.uint32).reshape(2, 28, 28) % 256
  np.testing.assert_array_equal(data.parse_idx(idx_bytes(images)), images)
  labels = np.array([3, 1, 4], np.uint8)
  np.testing.assert_array_equal(data.parse_idx(idx_bytes(labels)), labels)


@pytest.mark.parametrize('raw, message', [
    (b'\x00\x00\x08', 'bad magic'),
    (b'\x01\x02\x08\x01\x00\x00\x00\x03abc', 'bad magic'),
    (b'\x00\x00\x0d\x01\x00\x00\x00\x03abc', 'type 0x0d'),
    (b'\x00\x00\x08\x03\x00\x00', 'incomplete header'),
    (b'\x00\x00\x08\x01\x00\x00\x00\x05abc', 'truncated'),
])
def test_parse_idx_rejects_bad_bytes(raw, message):
  with pytest.raises(DataError, match=message):
    data.parse_idx(raw)


def test_load_real_folder(mnist_dir):
  mnist = data.load_mnist(str(mnist_dir))
  assert mnist.train_images.shape == (60000, 28, 28)
  assert mnist.test_images.shape == (10000, 28, 28)
  assert mnist.train_images.dtype == np.uint8
  assert mnist.train_labels.shape == (60000,) and mnist.test_labels.shape == (10000,)
  assert mnist.train_labels[:5].tolist() == [5, 0, 4, 1, 9]  # MNIST's known first labels
  assert set(np.unique(mnist.test_labels)) == set(range(10))


@pytest.fixture
def folder_copy(mnist_dir, tmp_path):
  for path in mnist_dir.iterdir():
    shutil.copy(path, tmp_path / path.name)
  return tmp_path


def test_uncompressed_files_are_accepted(folder_copy):
  gz = folder_copy / 't10k-labels-idx1-ubyte.gz'
  (folder_copy / 't10k-labels-idx1-ubyte').write_bytes(gzip.decompress(gz.read_bytes()))
  gz.unlink()
  assert data.load_idx_folder(folder_copy).test_labels.shape == (10000,)


def test_md5_mismatch_names_the_file(folder_copy):
  gz = folder_copy / 't10k-labels-idx1-ubyte.gz'
  raw = bytearray(gzip.decompress(gz.read_bytes()))
  raw[100] = (raw[100] + 1) % 10  # a wrong label: valid IDX, wrong data
  gz.write_bytes(gzip.compress(bytes(raw)))
  with pytest.raises(DataError, match=r't10k-labels-idx1-ubyte\.gz does not match'):
    data.load_idx_folder(folder_copy)


def test_truncated_gzip_names_the_file(folder_copy):
  gz = folder_copy / 'train-labels-idx1-ubyte.gz'
  gz.write_bytes(gz.read_bytes()[:1000])
  with pytest.raises(DataError, match=r'train-labels-idx1-ubyte\.gz cannot be decompressed'):
    data.load_idx_folder(folder_copy)


def test_missing_file_and_missing_folder(folder_copy, tmp_path):
  (folder_copy / 'train-images-idx3-ubyte.gz').unlink()
  with pytest.raises(DataError, match='has no train-images-idx3-ubyte.gz'):
    data.load_idx_folder(folder_copy)
  with pytest.raises(DataError, match='does not exist'):
    data.load_mnist(str(tmp_path / 'nowhere'))


def test_tfds_path_under_mock_data():
  # Called directly: `load_mnist` with no folder now downloads into the cache first
  # (tests/test_fetch.py covers when it falls back to tensorflow-datasets).
  with tfds.testing.mock_data(num_examples=6):
    mnist = data.load_tfds()
  for images, labels in [(mnist.train_images, mnist.train_labels),
                         (mnist.test_images, mnist.test_labels)]:
    assert images.shape == (6, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (6,) and labels.dtype == np.int32
    assert labels.min() >= 0 and labels.max() <= 9


def test_to_float_range():
  images = np.array([[0, 255], [128, 1]], np.uint8)
  floats = data.to_float(images)
  assert floats.dtype == np.float32
  assert floats.min() == 0.0 and floats.max() == 1.0
