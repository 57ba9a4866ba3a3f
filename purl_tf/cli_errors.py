"""One-line errors for the command-line tools, and their result lines.

A user who points a tool at a wrong directory or file should read one line
that names the problem and the fix, not a traceback from inside TensorFlow.
Errors that are the user's (ValueError and its subclasses, missing files) are
turned into `purl-xxx: error: ...` and exit code 2; anything else is a bug and
keeps its traceback.
"""

import contextlib
import sys

from absl import logging

from purl_tf import train

EXIT_USER_ERROR = 2
EXIT_DIVERGED = 3


def quiet_logging():
  """Hides absl INFO lines unless the user asked for them with --verbosity.

  Progress goes to stdout; absl INFO is mostly TensorFlow's SavedModel
  chatter. absl reports its `verbosity` flag as set even when it was not, so
  the command line itself is read.
  """
  if not any(a.startswith(('--verbosity', '-v')) for a in sys.argv[1:]):
    logging.set_verbosity(logging.WARNING)


@contextlib.contextmanager
def friendly_errors(tool: str):
  try:
    yield
  except train.NonFiniteLossError as e:
    print(f'{tool}: error: {e}', file=sys.stderr)
    sys.exit(EXIT_DIVERGED)
  except (ValueError, FileNotFoundError) as e:
    message = str(e).splitlines()[0] if str(e) else type(e).__name__
    print(f'{tool}: error: {message}', file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)


def format_summary(summary: dict) -> str:
  """The few lines a user reads at the end of a run."""
  return '\n'.join([
      f'dense test accuracy:  {summary["dense_test_accuracy"]:.4f}',
      f'pruned test accuracy: {summary["pruned_test_accuracy"]:.4f} '
      f'({summary["method"]})',
      f'global sparsity:      {summary["reached_global_sparsity"]:.4f} '
      f'(target {summary["target_sparsity"]:.4f})',
      f'gzip size vs dense:   {summary["gzip_bytes"]["ratio"]:.3f}x',
      f'exported to:          {summary["export_path"]}',
  ])
