"""Shared fixtures: the real MNIST folder, small synthetic data, and small random
models (a U-Net and a generating classifier) for the samplers' tests."""

import os
import pathlib
import shutil

import jax
import numpy as np
import pytest
from flax import nnx

from experiments import diffusion as diffusion_experiment
from flipnum_jax import data
from flipnum_jax import models
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


@pytest.fixture(scope='module')
def tiny_unet():
  """The smoke flow model's U-Net (graphdef, params), untrained."""
  config = diffusion_experiment.model_config('smoke')
  return nnx.split(models.make_unet(config.model, jax.random.key(0)))


@pytest.fixture(scope='module')
def tiny_classifier():
  """A small random generating classifier (graphdef, params) to guide with."""
  spec = models.classifier_spec()
  spec.conv_features, spec.hidden = (4, 8), 16
  return nnx.split(models.make_classifier(spec, jax.random.key(5)))
