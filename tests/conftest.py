"""Shared fixtures: the real MNIST folder, and small synthetic data."""

import os
import pathlib
import shutil

import numpy as np
import pytest

from flipnum_jax import data
from flipnum_jax.errors import DataError

REPO = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope='session')
def mnist_dir() -> pathlib.Path:
  """The real MNIST IDX folder: $FLIPNUM_DATA_DIR (CI sets it), else the kit's
  download cache, filled on first use as the README's first command fills it."""
  named = os.environ.get(data.DATA_DIR_ENV)
  if named:
    if not pathlib.Path(named).is_dir():
      pytest.skip(f'no MNIST folder at {named}; fix {data.DATA_DIR_ENV}')
    return pathlib.Path(named)
  try:
    data.load_cache()
  except DataError as e:
    pytest.skip(f'no MNIST: {e}')
  return data.cache_dir()


@pytest.fixture(scope='session')
def tiny_mnist() -> data.Mnist:
  """Random 'digits' whose label is encoded in the image, so a model can learn it."""
  rng = np.random.default_rng(0)
  def make(n):
    labels = rng.integers(0, 10, n).astype(np.int32)
    images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
    for i, label in enumerate(labels):  # a bright bar whose row says the label
      images[i, 2 + 2 * label, 4:24] = 255
    return images, labels
  train_images, train_labels = make(512)
  test_images, test_labels = make(200)
  return data.Mnist(train_images, train_labels, test_images, test_labels)


def override(config, dotted_key: str, value) -> None:
  """Sets the (possibly nested) key `a.b` of a ConfigDict, as --config.a.b would."""
  *sections, leaf = dotted_key.split('.')
  for section in sections:
    config = config[section]
  config[leaf] = value


@pytest.fixture(scope='session')
def smoke_workdir(tmp_path_factory) -> pathlib.Path:
  """One workdir for the command-line smoke runs of the generating jobs, so the smoke
  models (classifier, diffusion) train once and compiled programs are cached once
  (`<workdir>/cache/jax`); each experiment writes its own folder in it."""
  return tmp_path_factory.mktemp('smoke_workdir')


CHROMIUM = shutil.which('chromium')
CHROMEDRIVER = shutil.which('chromedriver')
needs_chromium = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason='needs Debian chromium and chromium-driver (.ci/run installs them)')


@pytest.fixture
def browser(tmp_path):
  """Headless Debian Chromium under Selenium, with nothing reaching the network."""
  from selenium import webdriver  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.chrome.service import Service  # pylint: disable=g-import-not-at-top

  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  for flag in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
               '--disable-background-networking', '--disable-component-update',
               '--disable-sync', '--no-first-run', f'--user-data-dir={tmp_path / "profile"}'):
    options.add_argument(flag)
  driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
  yield driver
  driver.quit()
