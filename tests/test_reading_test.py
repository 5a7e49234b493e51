"""The reading test: trials and orders, the paper form, scoring, and the page driven
in a real headless browser by a scripted rater."""

import json
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest

from experiments import reading_test as reading_experiment
from flipnum_jax import data
from flipnum_jax import gallery
from flipnum_jax import io
from flipnum_jax import reading_test as reading_lib
from flipnum_jax.errors import DataError
from flipnum_jax.judges import pooled as pooled_lib
from flipnum_jax.judges import readers
from tests.conftest import needs_chromium
from tests.test_run import assert_one_line_error, run_cli


def small_config(**overrides):
  config = reading_experiment.get_config('smoke')
  config.natural_flips_per_digit = 0
  config.port = 0
  config.update(overrides)
  return config


@pytest.fixture
def small_test(tmp_path, mnist_dir):
  """A reading test of 3 generated pairs (6 views), 20 real digits, 4 catch trials."""
  images = np.random.default_rng(0).random((3, 28, 28)).astype(np.float32)
  io.write_npz(tmp_path / 'mine' / 'pairs.npz', images=images,
               pairs=np.array([[3, 7], [6, 9], [0, 0]]))
  config = small_config(inputs=str(tmp_path / 'mine' / 'pairs.npz'))
  test_dir, test = reading_lib.prepare(config, io.Workspace(tmp_path, str(mnist_dir)),
                                       'reading_test')
  return test_dir, test, images


def test_trials_are_both_views_of_every_input_plus_controls(small_test):
  test_dir, test, images = small_test
  assert len(test.images) == 6 + 20 + 4
  mine = test.source == 0
  np.testing.assert_array_equal(test.view[mine], [0, 0, 0, 1, 1, 1])
  np.testing.assert_array_equal(test.digit[mine], [3, 6, 0, 7, 9, 0])
  np.testing.assert_array_equal(test.images[mine][:3], images)
  np.testing.assert_array_equal(test.images[mine][3:], images[:, ::-1, ::-1])  # turned
  real = test.source == reading_lib.REAL_CONTROL
  assert sorted(np.bincount(test.digit[real])) == [2] * 10  # every digit twice
  catches = np.isin(test.source, (reading_lib.NOISE, reading_lib.OVERLAY))
  assert catches.sum() == 4 and np.all(test.digit[catches] == reading_lib.NOT_A_DIGIT)
  # Saved and loaded, the test is the same; its hash names its images.
  loaded = reading_lib.load_test(test_dir)
  assert loaded.hash == test.hash
  assert test.inputs[0]['name'] == 'mine' and test.inputs[0]['pairs'] == [[3, 7], [6, 9], [0, 0]]
  np.testing.assert_array_equal(loaded.images, test.images)


def test_real_controls_are_the_typical_half_of_each_class(small_test, mnist_dir):
  _, test, _ = small_test
  mnist = data.load_idx_folder(mnist_dir)
  half = len(mnist.test_labels) // 2
  shown = test.images[test.source == reading_lib.REAL_CONTROL]
  test_images = data.to_float(mnist.test_images)
  for digit in range(10):
    typical = reading_lib.typical_test_digits(mnist, digit)
    in_class = np.flatnonzero(mnist.test_labels[half:] == digit)
    # The nearer half of the class's digits of the test set's second half.
    assert np.all(mnist.test_labels[typical] == digit) and np.all(typical >= half)
    assert abs(len(typical) - len(in_class) / 2) <= 1
    mean = data.to_float(mnist.train_images[mnist.train_labels == digit]).mean(0)
    distance = lambda images: ((images - mean) ** 2).sum((-2, -1))
    assert distance(test_images[typical]).max() < distance(test_images[half + in_class]).max()
    # Every control of this digit is one of them.
    for image in shown[test.digit[test.source == reading_lib.REAL_CONTROL] == digit]:
      assert np.abs(test_images[typical] - image).sum((1, 2)).min() == 0


def test_each_rater_has_an_order_of_their_own_that_does_not_change(small_test):
  _, test, _ = small_test
  first = reading_lib.rater_order(test, 'ada')
  assert sorted(first) == list(range(len(test.images)))
  np.testing.assert_array_equal(first, reading_lib.rater_order(test, 'ada'))
  assert not np.array_equal(first, reading_lib.rater_order(test, 'bob'))


def fill_template(test, rater, answer_of_trial):
  """A filled-in answer template: trial t (in the rater's order) gets answer_of_trial(t)."""
  lines = reading_lib.answer_template(test, rater, 'confident').splitlines()
  header = [l for l in lines if l.startswith('#')]
  order = reading_lib.rater_order(test, rater)
  return '\n'.join(header + [f'{n}: {answer_of_trial(t)}' for n, t in enumerate(order, 1)]) + '\n'


def test_sheets_show_every_view_once_and_filled_answers_read_back(small_test, mnist_dir):
  test_dir, test, _ = small_test
  config = small_config(inputs=test.inputs[0]['path'], format='sheets', raters='ada',
                        instruction='confident', per_sheet=8, columns=4)
  reading_lib.prepare(config, io.Workspace(test_dir.parent, str(mnist_dir)), 'reading_test')
  sheets = sorted((test_dir / 'sheets' / 'ada').glob('sheet_*.png'))
  assert len(sheets) == 4  # 30 views, 8 a sheet
  assert all(p.read_bytes().startswith(b'\x89PNG') for p in sheets)
  template = (test_dir / 'sheets' / 'ada' / 'answers.txt').read_text()
  assert template.count('\n') == 4 + 30 and '30: \n' in template

  truth = lambda t: '?' if test.digit[t] < 0 else str(test.digit[t])
  path = test_dir / 'readings' / 'ada.txt'
  path.parent.mkdir()
  path.write_text(fill_template(test, 'ada', truth))
  (reading,) = reading_lib.load_readings(test_dir, test)
  assert (reading.rater, reading.instruction, reading.form) == ('ada', 'confident', 'sheets')
  expected = np.where(test.digit < 0, reading_lib.CANT_TELL, test.digit)
  np.testing.assert_array_equal(reading.answers, expected)

  path.write_text(fill_template(test, 'ada', truth).replace('\n30: ', '\n31: '))
  with pytest.raises(DataError, match='there is no image 31'):
    reading_lib.load_readings(test_dir, test)
  path.write_text(fill_template(test, 'ada', truth).replace('\n7: ', '\n7: x'))
  with pytest.raises(DataError, match="'x"):
    reading_lib.load_readings(test_dir, test)
  path.write_text(fill_template(test, 'ada', truth).replace(test.hash[:16], '0' * 16))
  with pytest.raises(DataError, match='other images'):
    reading_lib.load_readings(test_dir, test)


def readings_of(test, *answer_rows, instruction='forced'):
  return [reading_lib.Readings(f'r{i}', instruction, 'sheets', np.array(row))
          for i, row in enumerate(answer_rows)]


def test_scoring_majority_ties_flags_and_pairs(small_test):
  _, test, _ = small_test
  truth = np.where(test.digit < 0, reading_lib.CANT_TELL, test.digit)
  mine = np.flatnonzero(test.source == 0)  # views: 3↑ 6↑ 0↑ 7↓ 9↓ 0↓
  good = truth.copy()
  good[mine[2]] = reading_lib.CANT_TELL  # misses 0 upright of pair (0, 0)
  half = truth.copy()
  half[mine[[0, 3]]] = 5  # misreads both views of (3, 7)
  bad = truth.copy()
  bad[test.source == reading_lib.REAL_CONTROL] = 1  # fails the real digits: flagged
  scored = readers.score_instruction(readings_of(test, good, half, bad), test, 'forced',
                                     0.9, 0.5)
  assert scored['raters']['r2']['flagged'] and not scored['raters']['r0']['flagged']
  assert scored['majority_of'] == ['r0', 'r1']
  # Two raters left: a view is read only when both read it (1 of 2 is a tie).
  result = scored['inputs']['mine']
  assert result['both_ways_pairs'] == [[6, 9]]
  assert result['both_count'] == 1 and result['upright'] == pytest.approx(1 / 3)
  low, high = result['both_interval']
  assert low < 1 / 3 < high
  assert scored['raters']['r1']['inputs']['mine']['both_ways_pairs'] == [[6, 9], [0, 0]]
  assert scored['controls']['real_accuracy'] == 1.0
  # A rater who calls most catch trials digits, or stops early, is flagged too.
  digits_everywhere = np.where(truth == reading_lib.CANT_TELL, 4, truth)
  unfinished = truth.copy()
  unfinished[-1] = reading_lib.UNANSWERED
  overlays_as_digits = np.where(test.source == reading_lib.OVERLAY, 8, truth)
  rows = (digits_everywhere, unfinished, overlays_as_digits)
  forced = readers.score_instruction(readings_of(test, *rows), test, 'forced', 0.9,
                                     0.5)['raters']
  assert forced['r0']['flagged'] and 'catch' in forced['r0']['flags'][0]
  assert forced['r1']['flagged'] and 'answered 29 of 30' in forced['r1']['flags'][0]
  # Two digits drawn over each other may look like a digit when the reader must name
  # the one it most looks like; not when they name only what they read confidently.
  assert not forced['r2']['flagged'] and forced['r2']['overlay_called_digit'] == 1.0
  confident = readers.score_instruction(readings_of(test, *rows, instruction='confident'),
                                        test, 'confident', 0.9, 0.5)['raters']
  assert forced['r2']['catch_called_digit'] == 0.0  # the noise it left '?'
  assert confident['r2']['catch_called_digit'] == 0.5  # 2 overlays of 2 noise + 2 overlays
  assert not confident['r2']['flagged']  # half is not most
  assert confident['r0']['flagged'] and confident['r0']['catch_called_digit'] == 1.0


def test_fleiss_kappa_matches_a_hand_computation():
  # 4 items, 3 raters, categories 0 and 1 (of 11):
  # item answers: (0,0,0) (1,1,1) (0,0,1) (0,1,1).
  answers = np.array([[0, 1, 0, 0], [0, 1, 0, 1], [0, 1, 1, 1]])
  # P_i = (sum n_ij² − n) / (n (n − 1)): 1, 1, 1/3, 1/3 → P̄ = 2/3.
  # p_0 = 6/12, p_1 = 6/12 → P̄e = 1/2; κ = (2/3 − 1/2) / (1 − 1/2) = 1/3.
  assert readers.fleiss_kappa(answers) == pytest.approx(1 / 3)
  # One more item all read 0: P̄ = 11/15, p_0 = 9/15 → P̄e = (81 + 36) / 225.
  more = np.concatenate([answers, np.zeros((3, 1), int)], 1)
  assert readers.fleiss_kappa(more) == pytest.approx((11 / 15 - 117 / 225) / (1 - 117 / 225))
  assert readers.fleiss_kappa(answers[:1]) is None  # one rater: no agreement to measure


def test_mcnemar_counts_discordant_pairs_and_gives_the_exact_p_value():
  first = np.array([True] * 10 + [False] * 2 + [True] * 5 + [False] * 3)
  second = np.array([False] * 10 + [True] * 2 + [True] * 5 + [False] * 3)
  result = readers.mcnemar(first, second)
  assert (result['both'], result['first_only'], result['second_only'], result['neither']) == \
      (5, 10, 2, 3)
  # Exact: two-sided binomial test of 2 successes in 12 at ½ = 2 · P(X ≤ 2).
  assert result['p_value'] == pytest.approx(2 * (1 + 12 + 66) / 4096)


def test_disagreements_list_pairs_and_views_the_panel_reads_and_readers_do_not():
  pairs = np.array([[3, 7], [6, 9], [0, 0]])
  reader_views = np.array([[False, True, True], [True, True, True]])
  panel_views = np.array([[True, True, False], [True, True, True]])
  result = readers.disagreements(reader_views, panel_views, pairs)
  assert result['panel_only_pairs'] == [[3, 7]] and result['readers_only_pairs'] == [[0, 0]]
  assert result['panel_only_views'] == {'3 upright': [1, 1]}


def test_bad_inputs_are_one_line_errors_and_overwrite_nothing(small_test, mnist_dir):
  test_dir, test, _ = small_test
  workdir = test_dir.parent
  result = run_cli('--experiment=reading_test', f'--workdir={workdir}',
                   f'--config.inputs={test.inputs[0]["path"]}', '--config.format=sheets',
                   '--config.raters=../evil', env_data_dir=mnist_dir)
  assert_one_line_error(result, "rater name '../evil'")
  assert not (workdir / 'evil').exists() and not (test_dir / 'sheets').exists()
  # A readings file made for other images is refused by evaluate before it trains.
  (test_dir / 'readings').mkdir()
  (test_dir / 'readings' / 'ada.json').write_text(json.dumps(
      {'rater': 'ada', 'instruction': 'forced', 'test_hash': 'f' * 64,
       'answers': [{'trial': 0, 'answer': '3'}]}))
  (workdir / 'evaluate' / 'smoke').mkdir(parents=True)
  (workdir / 'evaluate' / 'smoke' / 'report.md').write_text('earlier report')
  result = run_cli('--experiment=evaluate:smoke', f'--workdir={workdir}',
                   f'--config.readings={test_dir}', env_data_dir=mnist_dir)
  assert_one_line_error(result, 'readings of other images')
  assert (workdir / 'evaluate' / 'smoke' / 'report.md').read_text() == 'earlier report'
  assert not (workdir / 'models').exists()  # refused before any judge trained
  # A sheet answer for an image the test does not have.
  (test_dir / 'readings' / 'ada.json').unlink()
  (test_dir / 'readings' / 'bob.txt').write_text(
      fill_template(test, 'bob', lambda t: '1') + '99: 3\n')
  result = run_cli('--experiment=evaluate:smoke', f'--workdir={workdir}',
                   f'--config.readings={test_dir}', env_data_dir=mnist_dir)
  assert_one_line_error(result, 'there is no image 99')
  # A different test is not written over readings of this one.
  result = run_cli('--experiment=reading_test', f'--workdir={workdir}',
                   f'--config.inputs={test.inputs[0]["path"]}', '--config.seed=5',
                   '--config.format=sheets', '--config.raters=ada', env_data_dir=mnist_dir)
  assert_one_line_error(result, 'holds readings of another test')
  assert reading_lib.load_test(test_dir).hash == test.hash


@pytest.fixture
def server(small_test):
  test_dir, test, _ = small_test
  httpd = reading_lib.make_server(reading_lib.Session(test_dir, test, 'forced'), 0)
  thread = threading.Thread(target=httpd.serve_forever, daemon=True)
  thread.start()
  yield f'http://127.0.0.1:{httpd.server_address[1]}/', test_dir, test
  httpd.shutdown()
  httpd.server_close()


def _get_json(url, body=None):
  request = urllib.request.Request(
      url, data=None if body is None else json.dumps(body).encode(),
      headers={'Content-Type': 'application/json'})
  try:
    with urllib.request.urlopen(request, timeout=10) as reply:
      return reply.status, json.loads(reply.read())
  except urllib.error.HTTPError as e:
    return e.code, json.loads(e.read())


def test_server_refuses_unsafe_names_and_reveals_no_key(server):
  url, test_dir, test = server
  status, reply = _get_json(url + 'api/start?rater=..%2Fevil')
  assert status == 400 and 'rater name' in reply['error']
  assert not (test_dir / 'readings').exists() and not (test_dir.parent / 'evil.json').exists()
  status, reply = _get_json(url + 'api/start?rater=ada')
  assert status == 200
  assert set(reply) == {'instruction', 'total', 'answered', 'images'}  # nothing else
  assert reply['total'] == len(test.images) and reply['answered'] == 0
  assert reply['instruction'] == reading_lib.INSTRUCTIONS['forced']


def test_each_rater_has_their_own_file_and_answers_come_in_order(server):
  url, test_dir, test = server
  assert _get_json(url + 'api/answer', {'rater': 'ada', 'position': 0, 'answer': '3'}) == \
      (200, {'answered': 1})
  assert _get_json(url + 'api/answer', {'rater': 'bob', 'position': 0, 'answer': '?'}) == \
      (200, {'answered': 1})
  status, reply = _get_json(url + 'api/answer', {'rater': 'ada', 'position': 5, 'answer': '1'})
  assert status == 400 and 'expected the answer to view 2' in reply['error']
  status, reply = _get_json(url + 'api/answer', {'rater': 'ada', 'position': 1, 'answer': '12'})
  assert status == 400 and "'12'" in reply['error']
  ada = json.loads((test_dir / 'readings' / 'ada.json').read_text())
  bob = json.loads((test_dir / 'readings' / 'bob.json').read_text())
  assert [a['answer'] for a in ada['answers']] == ['3']
  assert [a['answer'] for a in bob['answers']] == ['?']
  assert ada['answers'][0]['trial'] == reading_lib.rater_order(test, 'ada')[0]
  assert ada['instruction'] == 'forced' and ada['test_hash'] == test.hash
  assert _get_json(url + 'api/start?rater=ada')[1]['answered'] == 1  # resumes


@needs_chromium
def test_a_scripted_rater_reads_reloads_and_finishes_in_headless_chromium(server, browser):
  from selenium.webdriver.common.by import By  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.support.ui import WebDriverWait  # pylint: disable=g-import-not-at-top

  url, test_dir, test = server
  order = reading_lib.rater_order(test, 'ada')
  given = ['?' if n % 11 == 10 else str(n % 11) for n in range(len(order))]
  driver = browser
  wait = WebDriverWait(driver, 10)

  def progress(n):
    wait.until(lambda d: d.find_element(By.ID, 'progress').text.startswith(f'{n} of '))

  def answer(n):
    if n % 2:  # odd views by keyboard, even ones by the buttons
      key = ' ' if given[n] == '?' else given[n]
      driver.find_element(By.TAG_NAME, 'body').send_keys(key)
    else:
      driver.find_element(By.CSS_SELECTOR, f'#answers button[data-answer="{given[n]}"]').click()
    progress(n + 1)

  driver.get(url)
  driver.find_element(By.ID, 'rater').send_keys('ada')
  driver.find_element(By.ID, 'begin').click()
  progress(0)
  assert driver.find_element(By.ID, 'instruction').text == reading_lib.INSTRUCTIONS['forced']
  shown = driver.find_element(By.ID, 'view').get_attribute('src')
  assert shown == gallery.png_data_uri(test.images[order[0]])  # the rater's own order
  for n in range(12):
    answer(n)
  driver.refresh()  # a reload resumes where the rater stopped
  progress(12)
  assert driver.find_element(By.ID, 'view').get_attribute('src') == \
      gallery.png_data_uri(test.images[order[12]])
  for n in range(12, len(order)):
    answer(n)
  assert driver.find_element(By.ID, 'done').is_displayed()
  assert driver.execute_script("return document.getElementById('fill').style.width") == '100%'
  text = driver.page_source
  assert 'src="http' not in text and 'href="http' not in text  # nothing from the network

  saved = json.loads((test_dir / 'readings' / 'ada.json').read_text())
  assert [a['answer'] for a in saved['answers']] == given
  assert [a['trial'] for a in saved['answers']] == order.tolist()
  (reading,) = reading_lib.load_readings(test_dir, test)
  scored = readers.score([reading], test, 0.9, 0.5)['instructions']['forced']
  codes = np.array([reading_lib.CANT_TELL if g == '?' else int(g) for g in given])
  answer_of = dict(zip(order, codes))
  real = np.flatnonzero(test.source == reading_lib.REAL_CONTROL)
  expected_real = np.mean([answer_of[t] == test.digit[t] for t in real])
  assert scored['raters']['ada']['real_accuracy'] == pytest.approx(expected_real)
  assert scored['raters']['ada']['flagged']  # these scripted answers are not a reader's
  mine = np.flatnonzero(test.source == 0)
  expected_upright = np.mean([answer_of[t] == test.digit[t] for t in mine[:3]])
  assert scored['raters']['ada']['inputs']['mine']['upright'] == pytest.approx(expected_upright)


def test_readings_of_the_same_images_pool_across_tests(small_test, mnist_dir, tmp_path):
  first_dir, first, images = small_test  # input 'mine': pairs (3, 7), (6, 9), (0, 0)
  io.write_npz(tmp_path / 'other' / 'pairs.npz', images=images[::-1].copy(),
               pairs=np.array([[3, 7], [6, 9], [0, 0]]))
  # A second test shows 'mine' again beside 'other' (the same pairs), its controls
  # drawn with another seed.
  second_dir, second = reading_lib.prepare(
      small_config(inputs=f"{tmp_path / 'mine' / 'pairs.npz'},{tmp_path / 'other' / 'pairs.npz'}",
                   seed=1),
      io.Workspace(tmp_path, str(mnist_dir)), 'second_test')
  assert first.inputs[0]['images_sha256'] == second.inputs[0]['images_sha256']

  def answers(test, change=None):
    truth = np.where(test.digit < 0, reading_lib.CANT_TELL, test.digit)
    for (source, view, item), answer in (change or {}).items():
      truth[(test.source == source) & (test.view == view) & (test.item == item)] = answer
    return truth

  flagged = answers(first)
  flagged[first.source == reading_lib.REAL_CONTROL] = 1  # fails the real digits
  tests = [
      (first, readings_of(first, answers(first), answers(first, {(0, 0, 0): 5}), flagged)),
      (second, readings_of(second, answers(second, {(0, 1, 0): reading_lib.CANT_TELL}),
                           answers(second, {(0, 1, 0): reading_lib.CANT_TELL,
                                            (1, 1, 0): 1}))
       + [reading_lib.Readings('c0', 'confident', 'sheets',
                               answers(second, {(0, 0, 1): 8}))])]
  pooled = pooled_lib.pool(tests, 'forced', 0.9, 0.5)
  mine = pooled['inputs'][first.inputs[0]['images_sha256']]
  # Four forced raters read 'mine' (the flagged one and the confident one do not
  # count): 3 upright read by 3 of 4, 7 turned by 2 of 4 (no majority).
  assert mine['raters'] == 4 and mine['tests'] == [0, 1]
  np.testing.assert_allclose(mine['weaker_view_share'], [0.5, 1.0, 1.0])
  assert mine['both_ways'] == [False, True, True] and mine['both_count'] == 2
  assert mine['read_instead']['3 upright'] == {'5': 1}
  assert mine['read_instead']['7 turned'] == {'?': 2}
  other = pooled['inputs'][second.inputs[1]['images_sha256']]
  assert other['raters'] == 2 and other['weaker_view_share'][0] == 0.5
  (pair_set,) = [s for s in pooled['pair_sets'] if len(s['inputs']) == 2]
  assert pair_set['read_in'] == [0, 2, 2] and pair_set['union'] == 2
  confident = pooled_lib.pool(tests, 'confident', 0.9, 0.5)['inputs']
  assert confident[first.inputs[0]['images_sha256']]['weaker_view_share'] == [1.0, 0.0, 1.0]

  # The job reads the same readings from the tests' folders.
  for (test, readings), folder in zip(tests, (first_dir, second_dir)):
    for reading in readings:
      io.write_json(reading_lib.readings_path(folder, reading.rater), {
          'rater': reading.rater, 'instruction': reading.instruction,
          'test_hash': test.hash, 'answers': [
              {'trial': t, 'answer': '?' if a == reading_lib.CANT_TELL else str(a)}
              for t, a in enumerate(reading.answers)]})
  out = tmp_path / 'w' / 'pool_readings'
  result = run_cli('--experiment=pool_readings', f'--workdir={tmp_path / "w"}',
                   f'--config.tests={first_dir},{second_dir}', env_data_dir=mnist_dir)
  assert result.returncode == 0, result.stderr[-2000:]
  written = json.loads((out / 'pooled.json').read_text())['instructions']
  assert written['forced']['inputs'][first.inputs[0]['images_sha256']] == mine
  digest = first.inputs[0]['images_sha256'][:8]
  assert (out / f'mine_{digest}_forced.png').read_bytes().startswith(b'\x89PNG')
  assert (out / 'union_0_forced.png').is_file()
  assert 'some input is read both ways on 2' in result.stdout

  (out / 'pooled.json').unlink()
  result = run_cli('--experiment=pool_readings', f'--workdir={tmp_path / "w"}',
                   f'--config.tests={first_dir},{tmp_path / "mine"}', env_data_dir=mnist_dir)
  assert_one_line_error(result, str(tmp_path / 'mine'))
  assert not (out / 'pooled.json').exists()
