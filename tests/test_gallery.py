"""The gallery page: built from a pairs file, then driven in a real headless browser."""

import pathlib
import time

import numpy as np
import pytest

from experiments import gallery as gallery_experiment
from flipnum_jax import exchange
from flipnum_jax import gallery
from flipnum_jax import io
from flipnum_jax.errors import ConfigError
from tests.conftest import needs_chromium


@pytest.fixture
def page(tmp_path, mnist_dir) -> pathlib.Path:
  grid = np.stack(np.meshgrid(np.arange(10), np.arange(10), indexing='ij'), -1).reshape(-1, 2)
  images = np.random.default_rng(0).random((100, 28, 28)).astype(np.float32)
  io.write_npz(tmp_path / 'pairs' / 'pairs.npz', images=images, pairs=grid)
  gallery.run_experiment(gallery_experiment.get_config(),
                         io.Workspace(tmp_path, str(mnist_dir)), 'gallery')
  return tmp_path / 'gallery' / 'index.html'


def test_page_is_self_contained_with_every_cell_and_guide(page):
  text = page.read_text()
  assert text.count('class="cell"') == 100
  assert text.count('class="guide"') == 20
  assert 'src="http' not in text and 'href="http' not in text  # nothing from the network
  assert text.count('src="data:image/png;base64,') == 120


def test_missing_pairs_output_is_a_clear_error(tmp_path):
  with pytest.raises(ConfigError, match='run `python run.py --experiment=pairs` first'):
    gallery.run_experiment(gallery_experiment.get_config(), io.Workspace(tmp_path),
                           'gallery')


@needs_chromium
def test_page_in_headless_chromium_loads_images_and_turns_a_clicked_cell(page, tmp_path,
                                                                        browser):
  from selenium.webdriver.common.action_chains import ActionChains  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.common.by import By  # pylint: disable=g-import-not-at-top

  driver = browser
  driver.set_window_size(1000, 1000)
  driver.get(page.as_uri())
  assert driver.execute_script('return document.images.length') == 120
  assert driver.execute_script(
      'return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)')
  transform = "return getComputedStyle(document.querySelectorAll('.cell img')[37]).transform"
  assert driver.execute_script(transform) == 'none'
  cell = driver.find_elements(By.CSS_SELECTOR, '.cell')[37]
  cell.click()
  # Move the pointer away so that only the click, not hover, keeps the cell turned.
  ActionChains(driver).move_to_element(driver.find_element(By.TAG_NAME, 'h1')).perform()
  time.sleep(0.8)  # the turn is a 0.4 s transition
  assert 'turned' in cell.get_attribute('class')
  matrix = driver.execute_script(transform)  # rotate(180deg) = matrix(-1, ~0, ~0, -1, 0, 0)
  a, b, c, d = (float(v) for v in matrix[len('matrix('):-1].split(',')[:4])
  assert a == pytest.approx(-1) and d == pytest.approx(-1) and abs(b) < 1e-6
  screenshot = tmp_path / 'gallery.png'
  assert driver.save_screenshot(str(screenshot))
  assert screenshot.read_bytes().startswith(b'\x89PNG')


def test_page_shows_the_blind_readers_first_when_evaluate_scored_readings():
  grid = np.stack(np.meshgrid(np.arange(10), np.arange(10), indexing='ij'), -1).reshape(-1, 2)
  images = np.zeros((100, 28, 28), np.float32)
  guides = np.zeros((10, 28, 28), np.float32)
  shown, other = exchange.images_hash(images), exchange.images_hash(images + 0.5)
  panel = {'judges': {'knn': {'both': 0.5}}, 'generator': None, 'panel': {'both': 0.4},
           'panel_both_ways_pairs': [[0, 0], [1, 2], [3, 4]], 'images_sha256': shown}
  # Another file's verdicts, listed first: the page must not show them on these images.
  elsewhere = {**panel, 'panel_both_ways_pairs': [[5, 5]], 'images_sha256': other}
  readers = {'inputs': {'other': other, 'pairs': shown}, 'instructions': {
      'forced': {'inputs': {'other': {'both': 0.5, 'both_ways_pairs': [[5, 5]]},
                            'pairs': {'both': 0.02, 'both_ways_pairs': [[1, 2], [6, 9]]}}},
      'confident': {'inputs': {'other': {'both': 0.5, 'both_ways_pairs': [[5, 5]]},
                               'pairs': {'both': 0.01, 'both_ways_pairs': [[6, 9]]}}}}}
  page = gallery.build_page(images, grid, guides, guides, None,
                            {'inputs': {'other': elsewhere, 'pairs': panel},
                             'readers': readers}, None)
  assert page.count('title="blind readers, forced">f✓') == 2
  assert page.count('title="blind readers, forced">f✗') == 98
  assert page.count('title="blind readers, confident">c✓') == 1
  assert page.count('title="judge panel">✓') == 3
  # The method table leads with the readers' columns; an input they did not read: —.
  assert '<th>input</th><th>blind readers, forced</th><th>blind readers, confident</th>' in page
  assert '<td>pairs</td><td><b>2%</b></td><td><b>1%</b></td>' in page
  assert '<td>other</td><td><b>50%</b></td><td><b>50%</b></td>' in page
  # Verdicts on other images are not shown on these.
  no_match = gallery.build_page(images + 0.25, grid, guides, guides, None,
                                {'inputs': {'pairs': panel}, 'readers': readers}, None)
  assert 'title="judge panel"' not in no_match and 'title="blind readers' not in no_match


def test_page_after_evaluate_judged_plain_samples_only():
  """evaluation.json of `--config.samples=…` alone has no pairs inputs: the page
  shows the grid without verdicts (it raised StopIteration)."""
  grid = np.stack(np.meshgrid(np.arange(10), np.arange(10), indexing='ij'), -1).reshape(-1, 2)
  guides = np.zeros((10, 28, 28), np.float32)
  page = gallery.build_page(np.zeros((100, 28, 28), np.float32), grid, guides,
                            guides, None, {'inputs': {}, 'samples': {'s': {}}, 'readers': None},
                            None)
  assert page.count('class="cell"') == 100 and 'judge panel' not in page
  assert '<h2>Methods' not in page
