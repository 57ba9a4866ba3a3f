"""Tests for purl_tf.config_doc: every config key is documented and printed."""

import glob
import importlib.util
import os
import re

import pytest

from purl_tf import config_defaults, config_doc
from tests.conftest import REPO

_SOURCE = '''
def base_config():
  c = ml_collections.ConfigDict()
  c.seed = 0                  # the seed.
  # The model section.
  c.model = ml_collections.ConfigDict()
  # A block comment
  # over two lines.
  c.model.name = 'cnn'
  c.model.alpha = 1.0         # a trailing comment that
                              # goes on below.
  c.model.beta = 2
  # Not gamma's: a blank line separates it.

  c.model.gamma = 3
'''


def _config_files():
  return sorted(glob.glob(os.path.join(REPO, 'configs', '*.py')))


def _load(path):
  spec = importlib.util.spec_from_file_location('cfg', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def testMeanings_BlockTrailingAndContinuationComments_BelongToTheirKey():
  keys, sections = config_doc.meanings(_SOURCE)
  assert sections == {'model': 'The model section.'}
  assert keys == {'seed': 'the seed.',
                  'model.name': 'A block comment over two lines.',
                  'model.alpha': 'a trailing comment that goes on below.',
                  'model.beta': '',
                  'model.gamma': ''}


@pytest.mark.parametrize('path', _config_files(), ids=os.path.basename)
def testEveryKeyOfAShippedConfig_HasAMeaning(path):
  keys, _ = config_doc.meanings()
  flat = dict(config_doc._flatten(_load(path)))
  assert flat, path
  assert not [k for k in flat if not keys.get(k)]


def testEverySection_HasAMeaning():
  _, sections = config_doc.meanings()
  base = config_defaults.base_config()
  subsections = [k for k, v in base.items() if hasattr(v, 'items')]
  assert sorted(sections) == sorted(subsections)
  assert all(sections.values())


def testDescribe_ListsEveryKeyWithItsValue_AndTheDefaultWhereOverridden():
  config = config_defaults.base_config()
  config.search.episodes = 7
  text = config_doc.describe(config)
  for key, value in config_doc._flatten(config):
    assert f'\n{key} = {value!r}' in '\n' + text, key
  assert 'search.episodes = 7   (default 16)' in text
  assert 'select.top_episodes = 3\n' in text  # not overridden: no default


def _package_source(exclude=('config_defaults.py', 'config_doc.py')):
  text = []
  for path in sorted(glob.glob(os.path.join(REPO, 'purl_tf', '*.py'))):
    if os.path.basename(path) not in exclude:
      with open(path) as f:
        text.append(f.read())
  return '\n'.join(text)


def testBaseConfig_AtMost70Keys_EachReadByThePackage():
  """A key nothing reads is a setting that does nothing: every key is read
  somewhere in purl_tf/ outside the defaults and their printer (as an
  attribute, an item or a `get`)."""
  keys = [key for key, _ in config_doc._flatten(config_defaults.base_config())]
  assert len(keys) <= 70, len(keys)
  source = _package_source()
  unread = [key for key in keys if not re.search(
      r'\.{0}\b|\[\'{0}\'\]|get\(\'{0}\''.format(key.split('.')[-1]), source)]
  assert not unread, unread


def testEveryConfigFile_SetsOnlyBaseKeys_AndListsAtMost70():
  for path in _config_files():
    for variant in ('', ':smoke'):
      config = config_defaults.load(path + variant)
      assert len(list(config_doc._flatten(config))) <= 70, path
