"""Tests for purl_tf.allocation."""

import numpy as np
import pytest

from purl_tf import allocation, models, pruning
from purl_tf.compat import keras


def _two_layer_model(k1, k2):
  inputs = keras.Input((k1.shape[0],))
  x = keras.layers.Dense(k1.shape[1], use_bias=False, name='a')(inputs)
  out = keras.layers.Dense(k2.shape[1], use_bias=False, name='b')(x)
  model = keras.Model(inputs, out)
  model.get_layer('a').set_weights([k1])
  model.get_layer('b').set_weights([k2])
  return model


def testUniform_EveryLayerAtTarget():
  got = allocation.uniform(models.fmnist_cnn(), 0.8)
  assert got == {'conv1': 0.8, 'conv2': 0.8, 'fc1': 0.8, 'fc2': 0.8}


def testGlobalMagnitude_ReadsPerLayerSparsityOffOneThreshold():
  # Layer a holds the 8 smallest magnitudes, layer b the 8 largest.
  k1 = np.arange(1, 9, dtype=np.float32).reshape(2, 4)
  k2 = np.arange(9, 17, dtype=np.float32).reshape(4, 2)
  got = allocation.global_magnitude(_two_layer_model(k1, k2), 0.75)
  assert got == {'a': 0.99, 'b': 0.5}  # a is capped; b absorbs the rest.
  got = allocation.global_magnitude(_two_layer_model(k1, k2), 0.25)
  assert got == {'a': 0.5, 'b': 0.0}


def testGlobalMagnitude_MeetsTargetOnRealNet():
  model = models.fmnist_cnn()
  infos = pruning.prunable_layers(model)
  for target in (0.5, 0.9, 0.98):
    got = allocation.global_magnitude(model, target)
    assert pruning.global_sparsity(infos, got) == pytest.approx(target, abs=0.005)
    assert all(0.0 <= s < 1.0 for s in got.values())


@pytest.mark.parametrize('bad', [-0.5, 1.0])
def testBadTarget_RaisesValueError(bad):
  with pytest.raises(ValueError, match='outside'):
    allocation.uniform(models.fmnist_cnn(), bad)
  with pytest.raises(ValueError, match='outside'):
    allocation.global_magnitude(models.fmnist_cnn(), bad)


def testUnknownMethod_RaisesValueError():
  with pytest.raises(ValueError, match='unknown allocation'):
    allocation.allocate('random', models.fmnist_cnn(), 0.5)


def testPickBySensitivity_PrunesTheInsensitiveLayerFirst():
  infos = pruning.prunable_layers(_two_layer_model(
      np.ones((10, 10), np.float32), np.ones((10, 10), np.float32)))
  scan = {'a': {0.0: 0.9, 0.5: 0.5, 0.9: 0.1},     # a is sensitive
          'b': {0.0: 0.9, 0.5: 0.89, 0.9: 0.88}}   # b is not
  assert allocation.pick_by_sensitivity(infos, scan, 0.45) == {'a': 0.0, 'b': 0.9}
  # 0.7 needs 140 of 200 weights: b at 0.9 (90) + a at 0.5 (50).
  assert allocation.pick_by_sensitivity(infos, scan, 0.7) == {'a': 0.5, 'b': 0.9}


def testPickBySensitivity_UnreachableTargetRaises():
  infos = pruning.prunable_layers(models.fmnist_cnn())
  scan = {i.name: {0.0: 0.9, 0.5: 0.8} for i in infos}
  with pytest.raises(ValueError, match='cannot reach'):
    allocation.pick_by_sensitivity(infos, scan, 0.6)


def testSensitivity_OnATrainedNetMeetsTheTarget():
  from purl_tf import data, config_defaults, train
  config = config_defaults.base_config().data
  config.update(train_size=1024, reward_size=256, batch_size=64)
  splits = data.get_splits(config)
  model = models.fmnist_cnn()
  train.compile_model(model, 1e-3)
  train.fine_tune(model, splits.train, epochs=1)
  got = allocation.allocate('sensitivity', model, 0.9, reward_ds=splits.reward,
                            eval_batches=2)
  infos = pruning.prunable_layers(model)
  assert pruning.global_sparsity(infos, got) >= 0.9
  assert pruning.global_sparsity(infos, got) <= 0.92


@pytest.mark.parametrize('found', [
    {'conv1': 0.0, 'conv2': 0.75, 'fc1': 0.95, 'fc2': 0.4},   # overshoots
    {'conv1': 0.2, 'conv2': 0.5, 'fc1': 0.85, 'fc2': 0.1},    # falls short
])
def testFitToTarget_MeetsTargetAndKeepsTheOrder(found):
  infos = pruning.prunable_layers(models.fmnist_cnn())
  got = allocation.fit_to_target(infos, found, 0.9)
  assert pruning.global_sparsity(infos, got) == pytest.approx(0.9, abs=1e-6)
  order = sorted(found, key=found.get)
  assert sorted(got, key=got.get) == order
  assert all(0.0 <= s < 1.0 for s in got.values())
