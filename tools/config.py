r"""purl-config: print a config with every key, its value, default and meaning.

  purl-config --config=configs/fmnist_resnet.py
  purl-config --config=configs/fmnist_cnn.py:smoke --config.search.episodes=8

Every key can be overridden the same way on purl-search and purl-prune
(`--config.<key>=<value>`). The meanings are the comments of
purl_tf/config_defaults.py.
"""

import sys

from absl import app
from ml_collections import config_flags

import purl_tf  # pylint: disable=unused-import  (selects Keras 2 first)
from purl_tf import cli_errors
from purl_tf import config_doc

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Path to a config file, with an optional :variant.',
    lock_config=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  cli_errors.quiet_logging()
  with cli_errors.friendly_errors('purl-config'):
    sys.stdout.write(config_doc.describe(_CONFIG.value))


def run():
  cli_errors.run_app(main, 'purl-config')


if __name__ == '__main__':
  sys.exit(run())
