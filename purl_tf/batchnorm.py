"""Re-estimates BatchNormalization statistics after the weights have moved.

A BatchNormalization layer normalises with moving averages (Keras default
momentum 0.99) that trail the weights: after pruning a layer, a short reward
fine-tune (10-20 batches) moves them by a few percent only, so an evaluation
in inference mode normalises with the dense net's statistics and reports an
accuracy far below what the pruned net can do (Li et al., 2020, "EagleEye",
call the fix *adaptive batch normalization*). Measured here on `fmnist_resnet`
after one dense epoch: 0.437 test accuracy with the trailing averages, 0.882
after re-estimating them from 50 training batches. Without it the search's
rewards on nets with BatchNormalization are mostly noise.

`BatchNormRecalibrator` sets every (trainable) BatchNormalization layer's
moving mean and variance to the exact average of the batch statistics over
`batches` training batches, in one traced function that is built once per
model: repeated calls neither retrace nor create variables. Models without
BatchNormalization are left alone at no cost.
"""

from typing import List, Optional

from purl_tf import pruning
from purl_tf.compat import keras, tf


def batchnorm_layers(model: keras.Model) -> List[keras.layers.Layer]:
  """The BatchNormalization layers whose statistics training updates.

  Frozen layers (`trainable=False`) run in inference mode even in training
  and keep their statistics, so they are left out.
  """
  found, seen = [], set()
  for module in [model] + list(model.submodules):
    if (isinstance(module, keras.layers.BatchNormalization) and module.trainable
        and id(module) not in seen):
      seen.add(id(module))
      found.append(module)
  return found


class BatchNormRecalibrator:
  """Sets BatchNormalization moving statistics to averages over given data.

  Args:
    model: a built Keras model (plain or wrapped for pruning).
    strategy: the strategy `model` was built under (default: the current one).
      Under `MirroredStrategy` each replica computes the statistics of its
      part of the batch; the averages are taken over replicas and batches.

  Raises:
    ValueError: `model` is not built.
  """

  def __init__(self, model: keras.Model,
               strategy: Optional[tf.distribute.Strategy] = None):
    if not model.built:
      raise ValueError('the model must be built before its BatchNormalization '
                       'statistics can be re-estimated')
    self._model = model
    self._strategy = strategy or tf.distribute.get_strategy()
    self._layers = batchnorm_layers(model)
    self._pruning_wrappers = list(pruning.wrappers(model).values())
    self._step = None
    self._sums = []

  @property
  def num_layers(self) -> int:
    return len(self._layers)

  def _stats(self):
    return [v for layer in self._layers
            for v in (layer.moving_mean, layer.moving_variance)]

  def _build(self):
    with self._strategy.scope():
      self._sums = [tf.Variable(tf.zeros_like(v.read_value()), trainable=False,
                                name='bn_stat_sum') for v in self._stats()]

    def forward(batch):
      # (images, labels) or images: the labels are not needed.
      images = batch[0] if isinstance(batch, (tuple, list)) else batch
      self._model(images, training=True)

    @tf.function
    def step(batch):
      self._strategy.run(forward, args=(batch,))
      for total, stat in zip(self._sums, self._stats()):
        # Reading an ON_READ statistic outside replica context averages it
        # over replicas.
        total.assign_add(tf.identity(stat))

    self._step = step

  def __call__(self, dataset: tf.data.Dataset, batches: int) -> int:
    """Re-estimates the statistics from the first `batches` of `dataset`.

    Args:
      dataset: batched `(images, labels)` or images, as in training.
      batches: how many batches to average over (0 does nothing).

    Returns:
      The number of batches used (fewer when `dataset` is shorter).
    """
    if batches < 0:
      raise ValueError(f'batches must be >= 0, got {batches}')
    if not self._layers or batches == 0:
      return 0
    if self._step is None:
      self._build()
    for total in self._sums:
      total.assign(tf.zeros_like(total))
    # Momentum 0 makes each forward pass overwrite the moving statistics with
    # that batch's; the step sums them. Momentum is read when the step is
    # traced (the first call), so it is set around every call and restored.
    momenta = [layer.momentum for layer in self._layers]
    # A pruning wrapper called in training mode asserts that a training step
    # has set its step counter; one that never trained (a sensitivity scan)
    # counts from step 0 for the duration. Schedules that re-mask at step 0
    # re-mask to the same target.
    untrained = [w.pruning_step for w in self._pruning_wrappers
                 if int(w.pruning_step.numpy()) < 0]
    count = 0
    try:
      for step in untrained:
        step.assign(0)
      for layer in self._layers:
        layer.momentum = 0.0
      # No map() to drop the labels: it would trace a dataset function at
      # every call (every search step).
      data = dataset.take(batches)
      for batch in self._strategy.experimental_distribute_dataset(data):
        self._step(batch)
        count += 1
    finally:
      for layer, momentum in zip(self._layers, momenta):
        layer.momentum = momentum
      for step in untrained:
        step.assign(-1)
    if count:
      for total, stat in zip(self._sums, self._stats()):
        stat.assign(total / count)
    return count


def recalibrate(model: keras.Model, dataset: tf.data.Dataset, batches: int,
                strategy: Optional[tf.distribute.Strategy] = None) -> int:
  """One-off `BatchNormRecalibrator(model, strategy)(dataset, batches)`."""
  return BatchNormRecalibrator(model, strategy)(dataset, batches)
