"""Shared test fixtures. Every random source a test uses is seeded here or in
the test itself (numpy, Python and TensorFlow through
`keras.utils.set_random_seed`)."""

import fcntl
import gc
import os
import subprocess
import sys

import pytest

import purl_tf  # pylint: disable=unused-import  (selects Keras 2 first)
from purl_tf.compat import keras

# As the tools do (cli_errors.run_app): the imports' objects live until exit,
# and the cyclic collector need not traverse them during every test.
gc.freeze()

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FMNIST_DIR = '/usr/share/datasets/fashion-mnist'
# The small real config every end-to-end CLI test runs.
SMOKE = os.path.join(REPO, 'configs', 'fmnist_cnn.py') + ':smoke'


@pytest.fixture(scope='module')
def splits():
  """Small real Fashion-MNIST splits: 512 train, 256 reward and 256 test
  images in batches of 32 (test files may define their own)."""
  from purl_tf import config_defaults, data  # pylint: disable=g-import-not-at-top
  config = config_defaults.base_config().data
  config.train_size = 512
  config.reward_size = 256
  config.test_size = 256
  config.batch_size = 32
  return data.get_splits(config, seed=0)


def tiny_search_config():
  """The default config with a search of a few seconds (3 episodes of tiny
  fine-tunes and evaluations, a few DQN updates, short selection fine-tunes)."""
  from purl_tf import config_defaults  # pylint: disable=g-import-not-at-top
  config = config_defaults.base_config()
  config.search.episodes = 3
  config.search.finetune_steps = 2
  config.search.subset_batches = 4
  config.search.eval_batches = 2
  config.agent.warmup_episodes = 1
  config.agent.train_iterations = 2
  config.agent.batch_size = 4
  # A few episodes fill a few dozen slots; checkpoints save the whole buffer.
  config.agent.replay_capacity = 200
  config.select.top_episodes = 1
  config.select.short_steps = 15
  return config


def pytest_addoption(parser):
  parser.addoption(
      '--runslow', action='store_true',
      help='also run the tests marked slow: the ImageNet-size smoke runs '
           '(about 15 min on 2 CPU cores).')


def pytest_configure(config):
  config.addinivalue_line(
      'markers', 'slow: a minutes-long end-to-end run (ImageNet configs); '
      'deselected unless --runslow')


def pytest_collection_modifyitems(config, items):
  # Deselected, not skipped: the fast suite (what CI runs) says in its last
  # lines that it left them out and how to run them.
  if config.getoption('--runslow'):
    return
  slow = [item for item in items if 'slow' in item.keywords]
  if slow:
    config.hook.pytest_deselected(items=slow)
    items[:] = [item for item in items if 'slow' not in item.keywords]


def pytest_terminal_summary(terminalreporter, config):
  # Said whatever was collected: under pytest-xdist the workers collect and
  # this (the reporting) process does not know their count.
  if not config.getoption('--runslow'):
    terminalreporter.write_line(
        'tests marked slow (the ImageNet-size smoke runs, about 15 min) run '
        'only with --runslow: tools/test.sh --runslow')


@pytest.fixture(autouse=True)
def _seed():
  keras.utils.set_random_seed(0)
  yield
  keras.backend.clear_session()


def tool(name):
  """The installed console script, else the tool run from the source tree."""
  exe = os.path.join(os.path.dirname(sys.executable), name)
  if os.path.exists(exe):
    return [exe]
  return [sys.executable, os.path.join(REPO, 'tools', name.split('-')[1] + '.py')]


def subprocess_env():
  env = dict(os.environ)
  env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
  env['CUDA_VISIBLE_DEVICES'] = ''
  return env


class SmokeSearch:
  """A finished `purl-search` of the :smoke config (see `smoke_search`)."""

  def __init__(self, root):
    self.workdir = root / 'smoke_search'
    self.dense_cache = root / 'smoke_dense_cache'
    # The flags it ran with: a `--resume` of a copy must pass the same.
    self.args = [f'--config={SMOKE}',
                 f'--config.train.cache_dir={self.dense_cache}']
    self._stdout = root / 'smoke_search.stdout'

  @property
  def finished(self) -> bool:
    return self._stdout.exists()

  @property
  def stdout(self) -> str:
    return self._stdout.read_text()

  def run(self):
    result = subprocess.run(
        tool('purl-search') + self.args + [f'--workdir={self.workdir}'],
        capture_output=True, text=True, env=subprocess_env(), cwd=REPO,
        timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    self._stdout.write_text(result.stdout)


@pytest.fixture(scope='session')
def smoke_search(tmp_path_factory):
  """One smoke search for the whole run, shared by the tests that read its
  outputs, compare against it or copy it, and by every pytest-xdist worker
  (the pattern of xdist's docs: the first to take the lock runs it). Its
  dense net is cached in `dense_cache` for tests that prune or search again."""
  base = tmp_path_factory.getbasetemp()
  # xdist names its workers in the environment; a run without workers (or
  # without the plugin) keeps the search in its own base directory.
  root = base.parent if os.environ.get('PYTEST_XDIST_WORKER') else base
  search = SmokeSearch(root)
  with open(root / 'smoke_search.lock', 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not search.finished:
      search.run()
  return search
