"""One-line errors for the command-line tools, and their result lines.

A user who points a tool at a wrong directory or file should read one line
that names the problem and the fix, not a traceback from inside TensorFlow.
Errors that are the user's (ValueError and its subclasses, files that are
missing or cannot be read or written) are turned into `purl-xxx: error: ...`
and exit code 2; a diverged final fine-tune into exit code 3; anything else
is a bug and keeps its traceback.
"""

import contextlib
import errno
import gc
import sys

from absl import logging

from purl_tf import interrupt
from purl_tf import train
from purl_tf.compat import tf

EXIT_USER_ERROR = 2
EXIT_DIVERGED = 3
EXIT_LOST_WORKER = 4


def quiet_logging():
  """Hides absl INFO lines unless the user asked for them with --verbosity.

  Progress goes to stdout; absl INFO is mostly TensorFlow's SavedModel
  chatter. absl reports its `verbosity` flag as set even when it was not, so
  the command line itself is read.
  """
  if not any(a.startswith(('--verbosity', '-v')) for a in sys.argv[1:]):
    logging.set_verbosity(logging.WARNING)


EXIT_INTERRUPTED = 130


@contextlib.contextmanager
def friendly_errors(tool: str):
  interrupt.install()
  try:
    yield
  except KeyboardInterrupt:
    # The search checkpoints after every episode; a pruning run has nothing
    # worth keeping before its summary.
    hint = ('; `--resume` continues the search from its last finished '
            'episode' if tool == 'purl-search' else '')
    print(f'{tool}: interrupted{hint}', file=sys.stderr)
    sys.exit(EXIT_INTERRUPTED)
  except train.NonFiniteLossError as e:
    print(f'{tool}: error: {e}', file=sys.stderr)
    sys.exit(EXIT_DIVERGED)
  except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError) as e:
    # A MultiWorkerMirroredStrategy peer died or stopped answering: say so,
    # write nothing more (the chief's summary.json never appears).
    first = str(e).split('Collective ops is aborted by:')[-1].strip()
    first = first.splitlines()[0] if first else type(e).__name__
    print(f'{tool}: error: lost a worker ({type(e).__name__}: {first}); '
          'restart every worker with the same command: the fine-tune resumes '
          'from its BackupAndRestore state', file=sys.stderr)
    sys.exit(EXIT_LOST_WORKER)
  except OSError as e:
    if e.errno == errno.ENOSPC or 'No space left on device' in str(e):
      hint = (' (`--resume` continues the search from its last checkpoint)'
              if tool == 'purl-search' else '')
      where = f' writing {e.filename}' if e.filename else ''
      print(f'{tool}: error: no space left on device{where}; free some space '
            f'and run again{hint}', file=sys.stderr)
      sys.exit(EXIT_USER_ERROR)
    _one_line(tool, e)
  except ValueError as e:
    _one_line(tool, e)


def _one_line(tool: str, e: BaseException):
  """Prints a user error as one line and exits with EXIT_USER_ERROR."""
  lines = [l.strip() for l in str(e).splitlines() if l.strip()]
  message = lines[0] if lines else type(e).__name__
  if len(lines) > 1:  # ml_collections puts the file's own error last
    message += f' ({lines[-1]})'
  print(f'{tool}: error: {message}', file=sys.stderr)
  sys.exit(EXIT_USER_ERROR)


def _root_cause(error: BaseException) -> BaseException:
  while error.__cause__ is not None or error.__context__ is not None:
    error = error.__cause__ or error.__context__
  return error


def run_app(main, tool: str):
  """`absl.app.run(main)`, with one-line errors for a config that fails to load.

  ml_collections loads `--config=FILE` while absl parses flags, before
  `main` runs; a missing or broken file would end in a traceback from inside
  the flag parser. Errors raised once `main` has started are left to
  `friendly_errors` (user errors) or shown in full (bugs).
  """
  from absl import app, flags  # pylint: disable=g-import-not-at-top
  # --help lists the key flags of the module named by sys.argv[0]; a
  # console script's is a generated wrapper that defines none, so the tool
  # module's flags are registered for it (else only --helpfull shows them).
  for flag in flags.FLAGS.get_key_flags_for_module(main.__module__):
    flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
  # What the imports made lives until exit: out of the cyclic collector's
  # sight, it is neither traversed by every full collection during the run
  # nor at interpreter exit (which took 2-3 s of every tool run).
  gc.freeze()
  started = []

  def wrapped(argv):
    started.append(True)
    return main(argv)

  def parse(argv):
    # absl's own parser answers a bad flag with a "FATAL Flags parsing error"
    # banner and exit code 1, not the one line and code 2 promised.
    try:
      return flags.FLAGS(argv)
    except flags.Error as e:
      text = str(e).splitlines()[0] if str(e) else type(e).__name__
      if text.startswith('flag --config'):
        raise  # a config file that fails to load: reported below
      print(f'{tool}: error: {text}', file=sys.stderr)
      sys.exit(EXIT_USER_ERROR)

  try:
    app.run(wrapped, flags_parser=parse)
  except Exception as e:  # pylint: disable=broad-except
    if started:
      raise
    root = _root_cause(e)
    print(f'{tool}: error: cannot load --config: {type(root).__name__}: '
          f'{str(root).splitlines()[0] if str(root) else ""}', file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)


def format_summary(summary: dict) -> str:
  """The few lines a user reads at the end of a run."""
  return '\n'.join([
      f'dense test accuracy:  {summary["dense_test_accuracy"]:.4f}',
      f'pruned test accuracy: {summary["pruned_test_accuracy"]:.4f} '
      f'({summary["method"]})',
      f'global sparsity:      {summary["reached_global_sparsity"]:.4f} '
      f'(target {summary["target_sparsity"]:.4f}'
      f'{"" if summary.get("target_met", True) else ", NOT MET"})',
      f'gzip size vs dense:   {summary["gzip_bytes"]["ratio"]:.3f}x',
      f'weights sha256:       {summary["weights_sha256"]}',
      f'exported to:          {summary["export_path"]}',
  ])
