r"""purl-prune: prune a trained network with one allocation, fine-tune, export.

  purl-prune --config=configs/fmnist_cnn.py:smoke --allocation=uniform \
      --sparsity=0.9 --workdir=/tmp/x

Writes DIR/summary.json and DIR/export/<model>/<version>/.
"""

import sys

from absl import app
from absl import flags
from ml_collections import config_flags

import purl_tf  # pylint: disable=unused-import  (selects Keras 2 first)
from purl_tf import cli_errors
from purl_tf import prune_run

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Path to a config file, with an optional :variant.',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.')
_ALLOCATION = flags.DEFINE_enum('allocation', 'uniform', list(prune_run.ALLOCATIONS),
                                'How to split the global target over layers.')
_SPARSITY = flags.DEFINE_float('sparsity', None, 'Global target sparsity '
                               '(default: config.prune.sparsity).',
                               lower_bound=0.0, upper_bound=0.999)
_POLICY = flags.DEFINE_string('policy', '', 'policy.json for --allocation=policy.')
_OVERWRITE = flags.DEFINE_bool('overwrite', False,
                               'Replace another run in --workdir.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  cli_errors.quiet_logging()
  with cli_errors.friendly_errors('purl-prune'):
    summary = prune_run.run_prune(
        _CONFIG.value, _WORKDIR.value, allocation_name=_ALLOCATION.value,
        sparsity=_SPARSITY.value, policy_path=_POLICY.value,
        overwrite=_OVERWRITE.value)
  print(cli_errors.format_summary(summary))


def run():
  cli_errors.run_app(main, 'purl-prune')


if __name__ == '__main__':
  sys.exit(run())
