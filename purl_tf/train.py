"""Fine-tuning under a `tf.distribute` strategy, with pruning callbacks.

`strategy.name` in a config picks:
  default       the default (single-device) strategy;
  mirrored      `MirroredStrategy` over the local GPUs, or over
                `logical_cpus` logical CPU devices when asked (tests, CPU-only
                machines);
  multi_worker  `MultiWorkerMirroredStrategy`, cluster read from `TF_CONFIG`;
  auto          `mirrored` when a GPU is visible, else `default`.

Models that train under a strategy must be created and compiled inside
`strategy.scope()`; `fine_tune` and `evaluate` may be called outside it.
"""

import math
import os
import time
from typing import List, Optional, Tuple

import numpy as np

from purl_tf import interrupt, progress
from purl_tf.compat import keras, tf, tfmot

STRATEGIES = ('auto', 'default', 'mirrored', 'multi_worker')


class NonFiniteLossError(RuntimeError):
  """The training loss became NaN or infinite."""


def configure_logical_cpus(n: int):
  """Splits the CPU into `n` logical devices (before TF's runtime starts)."""
  cpus = tf.config.list_physical_devices('CPU')
  current = tf.config.get_logical_device_configuration(cpus[0])
  if current and len(current) == n:
    return
  tf.config.set_logical_device_configuration(
      cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(n)])


def get_strategy(config) -> tf.distribute.Strategy:
  """Returns the strategy a `strategy` config names.

  Raises:
    ValueError: unknown name.
  """
  name = config.get('name', 'auto')
  if name not in STRATEGIES:
    raise ValueError(f'unknown strategy {name!r}; one of {STRATEGIES}')
  # Physical devices can be listed without starting TF's runtime; logical
  # CPUs must be configured before it starts.
  gpus = tf.config.list_physical_devices('GPU')
  n_cpus = int(config.get('logical_cpus', 0) or 0)
  if name == 'auto':
    name = 'mirrored' if gpus else 'default'
  if name == 'default':
    return tf.distribute.get_strategy()
  if n_cpus > 1 and not gpus:
    configure_logical_cpus(n_cpus)
  if name == 'multi_worker':
    if 'TF_CONFIG' not in os.environ:
      raise ValueError('--config.strategy.name=multi_worker reads the cluster '
                       'from the TF_CONFIG environment variable, which is not '
                       'set (see README, "Running on GPUs and clusters")')
    timeout = float(config.get('collective_timeout_s', 0) or 0) or None
    # A worker that dies would leave the others blocked in a collective for
    # ever; with a timeout they fail with DeadlineExceeded instead.
    options = tf.distribute.experimental.CommunicationOptions(
        timeout_seconds=timeout)
    return tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=options)
  if gpus:
    return tf.distribute.MirroredStrategy()
  if n_cpus > 1:
    devices = [d.name for d in tf.config.list_logical_devices('CPU')][:n_cpus]
    return tf.distribute.MirroredStrategy(devices)
  return tf.distribute.MirroredStrategy()


def compile_model(model: keras.Model, learning_rate: float,
                  optimizer: str = 'adam'):
  """Compiles for sparse-label classification (call inside strategy.scope())."""
  if optimizer == 'adam':
    opt = keras.optimizers.Adam(learning_rate)
  elif optimizer == 'sgd':
    opt = keras.optimizers.SGD(learning_rate, momentum=0.9)
  else:
    raise ValueError(f'unknown optimizer {optimizer!r}; adam or sgd')
  model.compile(optimizer=opt, loss='sparse_categorical_crossentropy',
                metrics=['accuracy'])
  return model


class StopOnNonFiniteLoss(keras.callbacks.Callback):
  """Stops training at the first batch whose loss is NaN or infinite."""

  def __init__(self):
    super().__init__()
    self.bad_batch = None

  def on_train_begin(self, logs=None):
    self.bad_batch = None

  def on_train_batch_end(self, batch, logs=None):
    loss = (logs or {}).get('loss')
    if loss is not None and not math.isfinite(float(loss)):
      self.bad_batch = batch
      self.model.stop_training = True


class HonourInterrupt(keras.callbacks.Callback):
  """Raises a Ctrl-C whose KeyboardInterrupt was lost (`purl_tf.interrupt`)
  at the next batch."""

  def on_train_batch_end(self, batch, logs=None):
    interrupt.check()


def fine_tune(model: keras.Model, dataset: tf.data.Dataset, *,
              epochs: int = 1, steps: Optional[int] = None,
              log_dir: Optional[str] = None, verbose: int = 0,
              callbacks: Optional[List[keras.callbacks.Callback]] = None) -> dict:
  """Trains a (wrapped) compiled model with the pruning callbacks.

  Args:
    model: a compiled model, wrapped by `pruning.apply_sparsity_map` or plain.
    dataset: batched (image, label) pipeline.
    epochs: passes over `dataset` (or over `steps` batches).
    steps: batches per epoch; `None` for the whole dataset.
    log_dir: when set, TensorBoard and tfmot `PruningSummaries` write there.
    verbose: Keras progress output (0 silent, 1 bar, 2 one line per epoch,
      and within an epoch a progress line every 30 s).
    callbacks: extra callbacks.

  Returns:
    `{'loss': last loss, 'accuracy': last accuracy, 'wall_s': seconds,
    'cpu_s': this process's CPU seconds, all threads}`: on a shared or
    throttled machine the wall time varies with the cores the process got,
    the CPU time much less (benchmarks compare costs with both).

  Raises:
    NonFiniteLossError: the loss became NaN/inf; training stopped at once.
  """
  guard = StopOnNonFiniteLoss()
  cbs = ([tfmot.sparsity.keras.UpdatePruningStep(), guard, HonourInterrupt()] +
         list(callbacks or []))
  if verbose == 2:
    # Keras prints nothing between its per-epoch lines.
    cbs.append(progress.KerasProgress())
  if log_dir:
    cbs.append(tfmot.sparsity.keras.PruningSummaries(log_dir=log_dir))
  start, cpu = time.perf_counter(), time.process_time()
  history = model.fit(dataset, epochs=epochs, steps_per_epoch=steps,
                      callbacks=cbs, verbose=verbose)
  wall = time.perf_counter() - start
  cpu = time.process_time() - cpu
  if guard.bad_batch is not None:
    raise NonFiniteLossError(
        f'the training loss became NaN or infinite at batch {guard.bad_batch}; '
        'lower the learning rate or check the data')
  logs = {k: v[-1] for k, v in history.history.items() if v}
  return {'loss': logs.get('loss'), 'accuracy': logs.get('accuracy'),
          'wall_s': wall, 'cpu_s': cpu}


def _within(dataset: tf.data.Dataset, steps: Optional[int]) -> Optional[int]:
  """`steps`, or the dataset's length when it is known and not more.

  Keras stops a pass that has a step count before the iterator runs dry;
  without one, under MirroredStrategy the replica that meets the end of the
  data cancels the other's all-reduce, and TensorFlow logs an error line
  (`Aborting RingReduce with CANCELLED`) at every evaluation.
  """
  n = int(dataset.cardinality())
  if n < 0:  # unknown or infinite
    return steps
  return n if steps is None else min(int(steps), n)


def evaluate(model: keras.Model, dataset: tf.data.Dataset,
             steps: Optional[int] = None) -> float:
  """Top-1 accuracy of a compiled model on `dataset`."""
  results = model.evaluate(dataset, steps=_within(dataset, steps), verbose=0,
                           return_dict=True)
  return float(results['accuracy'])


def correct_predictions(model: keras.Model, dataset: tf.data.Dataset,
                        steps: Optional[int] = None) -> np.ndarray:
  """Whether the model's top-1 class is right, per example, in dataset order.

  The mean is `evaluate`'s accuracy; the vector lets two models be compared
  on the same examples (a paired test).
  """
  return per_example(model, dataset, steps)[0]


def per_example(model: keras.Model, dataset: tf.data.Dataset,
                steps: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
  """Per example, in dataset order: whether the top-1 class is right, and the
  cross-entropy of the true class (as the training loss `compile_model` sets
  on the model's probabilities, with a floor of 1e-12 on the probability).

  Returns:
    (correct: bool array, loss: float array), of the same length.
  """
  correct, loss = [], []
  for x, y in (dataset.take(steps) if steps else dataset):
    probs = np.asarray(model.predict_on_batch(x), np.float64)
    y = np.asarray(y).reshape(-1).astype(int)
    correct.append(np.argmax(probs, axis=-1) == y)
    # A floor, not Keras' 1e-7 clip: a net sure of a wrong class scores
    # worse than one merely unsure.
    loss.append(-np.log(np.maximum(probs[np.arange(len(y)), y], 1e-12)))
  if not correct:
    return np.zeros(0, bool), np.zeros(0)
  return np.concatenate(correct), np.concatenate(loss)


def train_dense(model: keras.Model, dataset, epochs: int, verbose: int = 2,
                log_dir: Optional[str] = None) -> dict:
  """Trains a compiled dense model; returns `fine_tune`'s dict."""
  print(f'training the dense model for {epochs} epoch(s)', flush=True)
  cbs = [keras.callbacks.TensorBoard(log_dir)] if log_dir else None
  return fine_tune(model, dataset, epochs=epochs, verbose=verbose, callbacks=cbs)
