"""The one place where purl_tf chooses its Keras.

tensorflow-model-optimization and tf-agents are written against Keras 2, which
TensorFlow >= 2.16 ships as the separate `tf_keras` package and selects when
`TF_USE_LEGACY_KERAS=1` is set *before* TensorFlow is first imported. Every
module of purl_tf imports `tf`, `keras` and `tfmot` from here, so the choice
lives in one place and cannot be made inconsistently.
"""

import contextlib
import io
import logging
import os

# Must precede the first `import tensorflow` anywhere in the process.
os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
# TensorFlow's C++ start-up chatter hides our own progress output.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import re  # pylint: disable=g-import-not-at-top,g-bad-import-order
import sys  # pylint: disable=g-import-not-at-top,g-bad-import-order
import tempfile  # pylint: disable=g-import-not-at-top,g-bad-import-order

# TensorFlow 2.21's C++ libraries log through absl before anything calls
# absl::InitializeLog(), and absl then writes every message to stderr whatever
# TF_CPP_MIN_LOG_LEVEL says (an upstream bug: abseil-cpp #1718/#1957). On a
# CPU machine that is, on every start, absl's banner, oneDNN's and the CUDA
# stub's INFO lines twice (two libraries), and an ERROR line from the GPU
# probe ("failed call to cuInit") that only says there is no CUDA driver.
# These come while TensorFlow is imported and its devices are first listed;
# `_filter_startup_log` re-applies the level to exactly those lines and passes
# on everything else. PURL_TF_STARTUP_LOG=1 shows them all unfiltered.
_ABSL_BANNER = 'WARNING: All log messages before absl::InitializeLog() is called'
_LOG_LINE = re.compile(r'^([IWEF])\d{4} ')
_NO_DRIVER = 'Could not find cuda drivers on your machine'
_CUINIT = 'failed call to cuInit'


def _filter_startup_log(text: str, min_level: int) -> str:
  """The lines of TensorFlow's start-up stderr that a user should see.

  Args:
    text: what was written to stderr while TensorFlow started.
    min_level: TF_CPP_MIN_LOG_LEVEL (0 INFO, 1 WARNING, 2 ERROR, 3 FATAL).

  Returns:
    `text` without absl's banner, without INFO/WARNING lines (and their
    continuation lines) below `min_level`, and without the GPU probe's cuInit
    error when the same start-up found no CUDA driver at all. Every other
    line, Python's own warnings included, is kept.
  """
  no_driver = _NO_DRIVER in text
  kept, dropping = [], False
  for line in text.splitlines(keepends=True):
    match = _LOG_LINE.match(line)
    if line.startswith(_ABSL_BANNER):
      dropping = True
    elif match:
      severity = 'IWEF'.index(match.group(1))
      dropping = severity < min_level or (no_driver and _CUINIT in line)
    elif dropping and not line.strip():
      dropping = False
    if not dropping:
      kept.append(line)
  return ''.join(kept)


@contextlib.contextmanager
def _startup_log_filtered():
  """Captures file descriptor 2 (C++ writes there, not to sys.stderr) into a
  file for the block, then writes the filtered capture to the real stderr."""
  if os.environ.get('PURL_TF_STARTUP_LOG') == '1':
    yield
    return
  try:
    sys.stderr.flush()
    saved = os.dup(2)
  except (OSError, ValueError):  # no stderr at all: nothing to filter.
    yield
    return
  with tempfile.TemporaryFile() as capture:
    os.dup2(capture.fileno(), 2)
    try:
      yield
    finally:
      try:
        sys.stderr.flush()
      finally:
        os.dup2(saved, 2)
        os.close(saved)
      capture.seek(0)
      text = capture.read().decode('utf-8', 'replace')
      try:
        level = int(os.environ.get('TF_CPP_MIN_LOG_LEVEL', '0'))
      except ValueError:
        level = 0
      out = _filter_startup_log(text, level)
      if out:
        os.write(2, out.encode('utf-8'))


with _startup_log_filtered():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tf_keras as keras  # pylint: disable=g-import-not-at-top
  import tensorflow_model_optimization as tfmot  # pylint: disable=g-import-not-at-top
  # The GPU probe runs when devices are first listed, not at import.
  tf.config.list_physical_devices()

if os.environ['TF_USE_LEGACY_KERAS'] != '1' or not tf.keras.__name__.startswith(
    ('tf_keras', 'tensorflow.keras')) or tf.keras.layers.Dense is not keras.layers.Dense:
  raise ImportError(
      'purl_tf needs Keras 2 (tf_keras): set TF_USE_LEGACY_KERAS=1 before '
      'TensorFlow is imported, or import purl_tf before tensorflow.')

# TensorFlow's Python INFO lines (SavedModel writer chatter) drown progress.
tf.get_logger().setLevel(logging.ERROR)

# tf-agents imports gym, whose __init__ prints a deprecation banner to stderr
# on every start; purl_tf never uses gym itself.
with contextlib.redirect_stderr(io.StringIO()):
  try:
    import gym  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    pass

__all__ = ['tf', 'keras', 'tfmot']
