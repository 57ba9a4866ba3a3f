r"""purl-report: PNG plots and a Markdown summary of one or more runs.

  purl-report --workdir=/tmp/s [--workdir=/tmp/u ...] [--out=DIR]

Writes DIR/report.md, per_layer_sparsity.png, search_curves.png (search runs)
and accuracy_vs_sparsity.png (two or more runs); DIR defaults to
FIRST_WORKDIR/report.
"""

import os
import sys

from absl import app
from absl import flags

import purl_tf  # pylint: disable=unused-import  (selects Keras 2 first)
from purl_tf import cli_errors
from purl_tf import report

_WORKDIR = flags.DEFINE_multi_string('workdir', None, 'A run directory.')
_OUT = flags.DEFINE_string('out', '', 'Output directory.')
flags.mark_flag_as_required('workdir')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  cli_errors.quiet_logging()
  with cli_errors.friendly_errors('purl-report'):
    out = _OUT.value or os.path.join(_WORKDIR.value[0], 'report')
    path = report.render(_WORKDIR.value, out)
    print(report.comparison([report.load_run(w) for w in _WORKDIR.value]))
    print(f'wrote {path} and its plots')


def run():
  cli_errors.run_app(main, 'purl-report')


if __name__ == '__main__':
  sys.exit(run())
