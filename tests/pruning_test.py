"""Tests for purl_tf.pruning."""

import warnings

import numpy as np
import pytest

from purl_tf import models, pruning, train
from purl_tf.compat import keras, tf, tfmot


def _dense_model(kernel):
  inputs = keras.Input((kernel.shape[0],))
  outputs = keras.layers.Dense(kernel.shape[1], use_bias=False, name='d')(inputs)
  model = keras.Model(inputs, outputs)
  model.get_layer('d').set_weights([kernel])
  return model


def _train_a_little(model, x, y, steps=2):
  train.compile_model(model, 1e-3)
  ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4).repeat()
  train.fine_tune(model, ds, epochs=1, steps=steps)


def testPrunesHalf_ZeroesExactlyTheSmallestHalf():
  kernel = np.arange(1, 17, dtype=np.float32).reshape(4, 4)
  kernel *= np.where(np.arange(16).reshape(4, 4) % 2, -1, 1)  # signs must not matter
  model = _dense_model(kernel)
  wrapped = pruning.apply_sparsity_map(model, {'d': 0.5})
  _train_a_little(wrapped, np.zeros((8, 4), np.float32), np.zeros(8, np.int64))
  stripped = pruning.strip(wrapped)
  got = stripped.get_layer('d').get_weights()[0]
  smallest = np.abs(kernel) <= 8
  assert np.all(got[smallest] == 0)
  # Zero inputs give zero gradients, so the kept half is unchanged.
  np.testing.assert_array_equal(got[~smallest], kernel[~smallest])


def testApplySparsityMap_KeepsTrainedWeightsAndLeavesOriginalAlone():
  model = models.fmnist_cnn()
  before = [w.copy() for w in model.get_weights()]
  wrapped = pruning.apply_sparsity_map(model, {'conv2': 0.5})
  assert isinstance(wrapped.get_layer('prune_low_magnitude_conv2'),
                    pruning.PruneLowMagnitude)
  assert not isinstance(wrapped.get_layer('conv1'), pruning.PruneLowMagnitude)
  np.testing.assert_array_equal(
      wrapped.get_layer('prune_low_magnitude_conv2').layer.get_weights()[0],
      before[2])
  x = np.random.RandomState(0).rand(8, 28, 28, 1).astype(np.float32)
  _train_a_little(wrapped, x, np.zeros(8, np.int64))
  for a, b in zip(before, model.get_weights()):
    np.testing.assert_array_equal(a, b)


def testPrunesZeroSparsity_IsNoOp():
  model = models.fmnist_cnn()
  wrapped = pruning.apply_sparsity_map(model, {'fc1': 0.0})
  x = np.zeros((8, 28, 28, 1), np.float32)
  _train_a_little(wrapped, x, np.zeros(8, np.int64))
  assert pruning.sparsity_report(pruning.strip(wrapped))['layers']['fc1'] == 0.0


def testDepthwiseLayer_ReachesItsTarget():
  inputs = keras.Input((8, 8, 4))
  x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name='dw')(inputs)
  x = keras.layers.GlobalAveragePooling2D()(x)
  model = keras.Model(inputs, keras.layers.Dense(2, name='out')(x))
  infos = pruning.prunable_layers(model)
  assert [(i.name, i.kind) for i in infos] == [('dw', 'depthwise'), ('out', 'dense')]
  wrapped = pruning.apply_sparsity_map(model, {'dw': 0.75})
  rng = np.random.RandomState(0)
  _train_a_little(wrapped, rng.rand(8, 8, 8, 4).astype(np.float32),
                  rng.randint(0, 2, 8))
  stripped = pruning.strip(wrapped)
  assert type(stripped.get_layer('dw')) is keras.layers.DepthwiseConv2D
  report = pruning.sparsity_report(stripped)
  assert report['layers']['dw'] == pytest.approx(0.75, abs=1 / 72)
  assert report['layers']['out'] == 0.0


def testMobileNetV2DepthwiseLayers_ArePrunable():
  model = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3),
                                         classes=10)
  infos = pruning.prunable_layers(model)
  assert sum(i.kind == 'depthwise' for i in infos) == 17
  wrapped = pruning.apply_sparsity_map(
      model, {i.name: 0.5 for i in infos if i.kind == 'depthwise'})
  depthwise = [w for w in pruning.wrappers(wrapped).values()
               if isinstance(w.layer, pruning.PrunableDepthwiseConv2D)]
  assert len(depthwise) == 17
  assert all(w.pruning_vars for w in depthwise)


def testStrip_PredictionsEqualWrappedModel():
  model = models.fmnist_cnn()
  wrapped = pruning.apply_sparsity_map(model, {'conv1': 0.3, 'fc1': 0.8})
  rng = np.random.RandomState(1)
  x = rng.rand(16, 28, 28, 1).astype(np.float32)
  _train_a_little(wrapped, x, rng.randint(0, 10, 16), steps=3)
  stripped = pruning.strip(wrapped)
  assert not pruning.wrappers(stripped)
  np.testing.assert_allclose(stripped.predict(x, verbose=0),
                             wrapped.predict(x, verbose=0), atol=1e-5)


def testLayerFeatures_SharesSumToOneAndFlopsAreHandChecked():
  infos = pruning.prunable_layers(models.fmnist_cnn())
  assert [i.name for i in infos] == ['conv1', 'conv2', 'fc1', 'fc2']
  assert sum(i.param_share for i in infos) == pytest.approx(1.0)
  assert sum(i.flop_share for i in infos) == pytest.approx(1.0)
  # conv1: 3*3*1*32 weights applied at 26*26 output positions.
  assert infos[0].flops == 3 * 3 * 1 * 32 * 26 * 26
  assert infos[2].params == 1600 * 128


def testPruneNow_MasksAtOnce():
  kernel = np.arange(1, 9, dtype=np.float32).reshape(2, 4)
  wrapped = pruning.apply_sparsity_map(_dense_model(kernel), {'d': 0.25})
  wrapped.build((None, 2))
  pruning.prune_now(pruning.wrappers(wrapped)['d'], 0.25)
  got = wrapped.get_layer('prune_low_magnitude_d').layer.kernel.numpy()
  np.testing.assert_array_equal(got.ravel(), [0, 0, 3, 4, 5, 6, 7, 8])


class _Subclassed(keras.Model):

  def __init__(self):
    super().__init__()
    self.d = keras.layers.Dense(2)

  def call(self, x):
    return self.d(x)


def testSubclassedModel_RaisesValueError():
  model = _Subclassed()
  model(np.zeros((1, 3), np.float32))
  with pytest.raises(ValueError, match='subclassed'):
    pruning.prunable_layers(model)


def testModelWithoutPrunableLayer_RaisesValueError():
  inputs = keras.Input((4,))
  model = keras.Model(inputs, keras.layers.ReLU()(inputs))
  with pytest.raises(ValueError, match='no prunable layer'):
    pruning.apply_sparsity_map(model, {})


def testUnknownLayerName_RaisesValueErrorNamingIt():
  with pytest.raises(ValueError, match="unknown layer name.*'nope'"):
    pruning.apply_sparsity_map(models.fmnist_cnn(), {'nope': 0.5})


@pytest.mark.parametrize('bad', [-0.1, 1.0, 1.5, float('nan')])
def testSparsityOutsideRange_RaisesValueError(bad):
  with pytest.raises(ValueError, match='outside'):
    pruning.apply_sparsity_map(models.fmnist_cnn(), {'fc1': bad})


def testVariableSparsity_ValidatesAndSerializes():
  with pytest.raises(ValueError):
    pruning.VariableSparsity(0.5, frequency=-1)
  should, _ = pruning.VariableSparsity(0.5, frequency=0)(tf.constant(0, tf.int64))
  assert not bool(should)
  with pytest.raises(ValueError):
    pruning.VariableSparsity(1.0)
  schedule = pruning.VariableSparsity(0.25, frequency=2)
  config = schedule.get_config()
  assert config['config'] == {'target': 0.25, 'frequency': 2}
  restored = pruning.VariableSparsity.from_config(config['config'])
  should, value = restored(tf.constant(4, tf.int64))
  assert bool(should) and float(value) == 0.25
  should, _ = restored(tf.constant(3, tf.int64))
  assert not bool(should)


def testPolynomialSchedule_EndStepIsAMultipleOfFrequency():
  schedule = pruning.polynomial_schedule(end_step=23, frequency=10)('x', 0.9)
  assert isinstance(schedule, tfmot.sparsity.keras.PolynomialDecay)
  assert schedule.get_config()['config']['end_step'] == 30
  should, sparsity = schedule(tf.constant(30, tf.int64))
  assert bool(should) and float(sparsity) == pytest.approx(0.9)


def testStripBelowTheScheduleTarget_Warns():
  model = pruning.apply_sparsity_map(models.fmnist_cnn(), {'fc1': 0.9},
                                     pruning.polynomial_schedule(1000, 1))
  model.compile('adam', 'sparse_categorical_crossentropy')
  x = np.random.RandomState(0).rand(16, 28, 28, 1).astype(np.float32)
  y = np.arange(16) % 10
  model.fit(x, y, epochs=1, batch_size=8, verbose=0,
            callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
  with pytest.warns(pruning.BelowTargetWarning, match='fc1 0.0'):
    pruning.strip(model)


def testStripAtTheTarget_DoesNotWarn():
  model = pruning.apply_sparsity_map(models.fmnist_cnn(), {'fc1': 0.9})
  model.compile('adam', 'sparse_categorical_crossentropy')
  x = np.random.RandomState(0).rand(16, 28, 28, 1).astype(np.float32)
  model.fit(x, np.arange(16) % 10, epochs=1, batch_size=8, verbose=0,
            callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
  with warnings.catch_warnings():
    warnings.simplefilter('error', pruning.BelowTargetWarning)
    pruning.strip(model)


def testPrunedAtOnce_ReachesEachLayersSparsity_LeavesTheModelAlone():
  model = models.fmnist_cnn()
  before = [w.copy() for w in model.get_weights()]
  sparsity = {'conv1': 0.5, 'conv2': 0.8, 'fc1': 0.95, 'fc2': 0.0}
  pruned = pruning.pruned_at_once(model, sparsity)
  assert not pruning.wrappers(pruned)
  assert pruning.sparsity_report(pruned)['layers'] == pytest.approx(
      sparsity, abs=0.01)
  for a, b in zip(before, model.get_weights()):
    np.testing.assert_array_equal(a, b)
