"""purl_tf: prune Keras networks layer by layer with reinforcement learning.

The public API. This module only re-exports; see each function's docstring.

  search(model, train_ds, reward_ds, config=None, ...) -> Policy
  allocate(model, method, target_sparsity, reward_ds=None) -> Policy
                                 the free baselines: uniform, global_magnitude,
                                 lamp, erk, sensitivity
  apply(model, policy, schedule=None) -> wrapped model for your own fit()
  callbacks(log_dir=None)        UpdatePruningStep (+ PruningSummaries)
  strip(model)                   the plain model, masked weights kept
  sparsity_report(model)         per-layer and global sparsity
  recalibrate_batchnorm(model, ds, batches)  BatchNormalization statistics
                                 re-estimated after pruning (see batchnorm)
  export_for_serving(model, export_dir, model_name, version=None)
  save_keras_model(model, path), load_keras_model(path)
                                 a stripped net as a .keras file, and back
  to_tflite(model, fmt='float32') -> bytes   zeros stored sparse; 'int8'
                                 adds dynamic-range quantization
  Policy                         per-layer sparsity + model fingerprint
  default_config()               the defaults every config starts from
  constant_schedule(), polynomial_schedule(end_step),
  ramp_schedule(epochs, steps_per_epoch)   one that ends within your fit()

Importing purl_tf selects Keras 2 (`TF_USE_LEGACY_KERAS=1`) before TensorFlow
loads: import it before tensorflow. See `purl_tf.compat`.
"""

import gc as _gc

# TensorFlow, tf-agents and TensorFlow Probability allocate millions of
# objects while importing, nearly all of which live as long as the process;
# the cyclic collector traversing them again and again costs about a third of
# the import (8.2 s -> 5.2 s measured on 2 cores), so it is paused meanwhile.
_gc_was_enabled = _gc.isenabled()
_gc.disable()
try:
  from purl_tf import compat as _compat  # pylint: disable=unused-import  (first)
  from purl_tf.batchnorm import recalibrate as recalibrate_batchnorm
  from purl_tf.config_defaults import base_config as default_config
  from purl_tf.export import export_for_serving, load_keras_model, save_keras_model
  from purl_tf.keras_api import allocate, apply, callbacks, search
  from purl_tf.policy import Policy
  from purl_tf.pruning import (constant_schedule, polynomial_schedule,
                               ramp_schedule, sparsity_report, strip)
  from purl_tf.tflite_export import convert as to_tflite
  from purl_tf.version import __version__
finally:
  if _gc_was_enabled:
    _gc.enable()
  del _gc_was_enabled

__all__ = ['search', 'allocate', 'apply', 'callbacks', 'strip', 'sparsity_report',
           'recalibrate_batchnorm', 'export_for_serving', 'save_keras_model',
           'load_keras_model', 'to_tflite', 'Policy', 'default_config',
           'constant_schedule', 'polynomial_schedule', 'ramp_schedule',
           '__version__']
