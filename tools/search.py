r"""purl-search: learn a per-layer sparsity policy with PuRL, then fine-tune it.

  purl-search --config=configs/fmnist_cnn.py:smoke --workdir=/tmp/s
  purl-search --config=configs/fmnist_cnn.py --workdir=/tmp/s \
      --config.search.episodes=60 [--resume]

Writes DIR/policy.json, episodes.jsonl, checkpoints/, tensorboard/,
greedy_policy/, summary.json and export/<model>/<version>/.
"""

import sys

from absl import app
from absl import flags
from ml_collections import config_flags

import purl_tf  # pylint: disable=unused-import  (selects Keras 2 first)
from purl_tf import cli_errors
from purl_tf import search_run

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Path to a config file, with an optional :variant.',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.')
_RESUME = flags.DEFINE_bool('resume', False,
                            'Continue the search in --workdir from its last '
                            'checkpoint.')
_OVERWRITE = flags.DEFINE_bool('overwrite', False,
                               'Replace another run in --workdir.')
flags.mark_flags_as_required(['config', 'workdir'])
flags.register_validator('resume', lambda v: not (v and _OVERWRITE.value),
                         '--resume and --overwrite exclude each other')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  cli_errors.quiet_logging()
  with cli_errors.friendly_errors('purl-search'):
    summary = search_run.run_search(_CONFIG.value, _WORKDIR.value,
                                resume=_RESUME.value, overwrite=_OVERWRITE.value)
  print(cli_errors.format_summary(summary))


def run():
  cli_errors.run_app(main, 'purl-search')


if __name__ == '__main__':
  sys.exit(run())
