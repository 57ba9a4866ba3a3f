"""Shared test fixtures. Every random source a test uses is seeded here or in
the test itself (numpy, Python and TensorFlow through
`keras.utils.set_random_seed`)."""

import os
import sys

import pytest

import purl_tf  # pylint: disable=unused-import  (selects Keras 2 first)
from purl_tf.compat import keras

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FMNIST_DIR = '/usr/share/datasets/fashion-mnist'


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
