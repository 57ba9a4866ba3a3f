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

import tensorflow as tf  # pylint: disable=g-import-not-at-top
import tf_keras as keras  # pylint: disable=g-import-not-at-top
import tensorflow_model_optimization as tfmot  # pylint: disable=g-import-not-at-top

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
