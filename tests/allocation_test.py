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


def testLampScores_HandComputed():
  # Squared [1, 4, 9, 16]; sums of the weights at least as large 30, 29, 25, 16.
  got = allocation.lamp_scores(np.array([[3.0, -1.0], [4.0, 2.0]]))
  np.testing.assert_allclose(got, [1 / 30, 4 / 29, 9 / 25, 1.0])


def _lamp_model(scale_b=1.0):
  # a: 2x2 with scores 1/30, 4/29, 9/25, 1; b: 2x3 of equal weights with
  # scores 1/6, 1/5, 1/4, 1/3, 1/2, 1.
  k1 = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
  k2 = np.full((2, 3), scale_b, np.float32)
  return _two_layer_model(k1, k2)


def testLamp_PerLayerSparsityHandComputed():
  # 5 of 10 go: 1/30, 4/29 (a) and 1/6, 1/5, 1/4 (b).
  assert allocation.lamp(_lamp_model(), 0.5) == {'a': 0.5, 'b': 0.5}
  # 7 of 10: then 1/3 (b) and 9/25 (a).
  assert allocation.lamp(_lamp_model(), 0.7) == {'a': 0.75, 'b': 4 / 6}


def testLamp_IsInvariantToScalingALayer_UnlikeGlobalMagnitude():
  assert allocation.lamp(_lamp_model(100.0), 0.7) == allocation.lamp(
      _lamp_model(), 0.7)
  assert allocation.global_magnitude(_lamp_model(100.0), 0.4)['a'] == 0.99
  assert allocation.global_magnitude(_lamp_model(), 0.4)['a'] == 0.0


def testLamp_NeverEmptiesALayer():
  got = allocation.lamp(_lamp_model(), 0.99)
  assert got == {'a': 0.75, 'b': 5 / 6}  # each keeps its largest weight


def _dense_model(shapes):
  inputs = keras.Input((shapes[0][0],))
  x = inputs
  for k, (_, n_out) in enumerate(shapes):
    x = keras.layers.Dense(n_out, use_bias=False, name=f'd{k}')(x)
  return keras.Model(inputs, x)


def testErkRawDensity_DenseAndConvShapes():
  assert allocation.erk_raw_density((4, 100)) == pytest.approx(104 / 400)
  assert allocation.erk_raw_density((3, 3, 1, 32)) == pytest.approx(39 / 288)


def testErk_HandComputed():
  # Raw densities 8/16, 104/400, 102/200; 616 weights. At 50%, 308 are kept:
  # eps = 308 / (8 + 104 + 102).
  model = _dense_model([(4, 4), (4, 100), (100, 2)])
  got = allocation.erk(model, 0.5)
  eps = 308 / 214
  assert got == pytest.approx({'d0': 1 - eps * 0.5, 'd1': 1 - eps * 0.26,
                               'd2': 1 - eps * 0.51})


def testErk_LayerAboveDensityOneIsKeptDenseAndTheScaleRecomputed():
  # At 20%, 492.8 are kept: eps = 492.8 / 214 would give d0 and d2 densities
  # above 1, so both are dense and d1 keeps the other 492.8 - 216.
  model = _dense_model([(4, 4), (4, 100), (100, 2)])
  got = allocation.erk(model, 0.2)
  assert got == pytest.approx({'d0': 0.0, 'd1': 1 - 276.8 / 400, 'd2': 0.0})


def testBlend_IsTheGeometricMeanOfDensities_RescaledToTheTarget():
  # Densities (0.5, 0.2) and (0.125, 0.8) on 100 + 100 weights: geometric
  # means 0.25 and 0.4, which keep 65 weights; at a 0.675 target (65 kept)
  # they stand; at 0.74 (52 kept) both are scaled by 52/65.
  infos = pruning.prunable_layers(_dense_model([(10, 10), (10, 10)]))
  a = {'d0': 0.5, 'd1': 0.8}
  b = {'d0': 0.875, 'd1': 0.2}
  assert allocation.blend(infos, [a, b], 0.675) == pytest.approx(
      {'d0': 0.75, 'd1': 0.6})
  got = allocation.blend(infos, [a, b], 0.74)
  assert got == pytest.approx({'d0': 1 - 0.25 * 0.8, 'd1': 1 - 0.4 * 0.8})
  # One map blended alone is that map, at its own global sparsity.
  assert allocation.blend(infos, [a], 0.65) == pytest.approx(a)


def testBlend_ALayerAboveDensityOneIsKeptDense():
  infos = pruning.prunable_layers(_dense_model([(10, 10), (10, 10)]))
  got = allocation.blend(infos, [{'d0': 0.0, 'd1': 0.9},
                                 {'d0': 0.5, 'd1': 0.9}], 0.3)
  assert got == pytest.approx({'d0': 0.0, 'd1': 0.6})


@pytest.mark.parametrize('target', [0.0, 0.9, 0.98, 0.99])
def testBlend_LampAndErkMeetTheTargetOnTheResnet(target):
  model = models.fmnist_resnet()
  infos = pruning.prunable_layers(model)
  maps = [allocation.lamp(model, target), allocation.erk(model, target)]
  got = allocation.blend(infos, maps, target)
  assert pruning.global_sparsity(infos, got) == pytest.approx(target, abs=1e-9)
  # Each layer's density lies between the two it blends, up to the common
  # rescale (at most a few percent here).
  for n, s in got.items():
    lo, hi = sorted(1 - m[n] for m in maps)
    assert 0.9 * lo <= 1 - s <= 1.1 * hi, n


def testAllocate_ABlendNameIsTheBlendOfItsParts():
  model = models.fmnist_resnet()
  infos = pruning.prunable_layers(model)
  want = allocation.blend(infos, [allocation.lamp(model, 0.95),
                                  allocation.erk(model, 0.95)], 0.95)
  assert allocation.allocate('lamp+erk', model, 0.95) == want
  assert allocation.is_free('global_magnitude+lamp+erk')
  for bad in ('lamp+lamp', 'lamp+sensitivity', 'lamp+', 'sensitivity',
              'random'):
    assert not allocation.is_free(bad), bad
  with pytest.raises(ValueError, match='unknown allocation'):
    allocation.allocate('lamp+lamp', model, 0.95)


def testAllocate_ARepeatedPartWeighsTheBlend():
  model = models.fmnist_resnet()
  infos = pruning.prunable_layers(model)
  lamp, erk = allocation.lamp(model, 0.98), allocation.erk(model, 0.98)
  got = allocation.allocate('lamp+erk+erk', model, 0.98)
  assert allocation.is_free('lamp+erk+erk')
  assert got == allocation.blend(infos, [lamp, erk, erk], 0.98)
  assert pruning.global_sparsity(infos, got) == pytest.approx(0.98, abs=1e-9)
  # Two thirds of the way to ERK: on the layers where LAMP and ERK disagree
  # most, the weighted blend is closer to ERK than the even blend is.
  even = allocation.allocate('lamp+erk', model, 0.98)
  far = sorted(lamp, key=lambda n: -abs(np.log((1 - lamp[n]) / (1 - erk[n]))))
  for n in far[:3]:
    assert abs(np.log((1 - got[n]) / (1 - erk[n]))) < abs(
        np.log((1 - even[n]) / (1 - erk[n]))), n


def testBlend_BadInputRaisesValueError():
  infos = pruning.prunable_layers(_dense_model([(10, 10), (10, 10)]))
  with pytest.raises(ValueError, match='at least one'):
    allocation.blend(infos, [], 0.5)
  with pytest.raises(ValueError, match=r"no sparsity for \['d1'\]"):
    allocation.blend(infos, [{'d0': 0.5}], 0.5)
  with pytest.raises(ValueError, match='outside'):
    allocation.blend(infos, [{'d0': 0.5, 'd1': 0.5}], 1.0)


@pytest.mark.parametrize('method', allocation.FREE_METHODS)
@pytest.mark.parametrize('target', [0.0, 0.5, 0.9, 0.95, 0.98, 0.99])
def testFreeMethods_MeetTheTargetWithinATenthOfAPointOnRealNets(method, target):
  for model in (models.fmnist_cnn(), models.fmnist_resnet()):
    infos = pruning.prunable_layers(model)
    got = allocation.fit_to_target(infos, allocation.allocate(method, model,
                                                              target), target)
    assert pruning.global_sparsity(infos, got) == pytest.approx(target,
                                                                abs=0.001)
    assert all(0.0 <= s < 1.0 for s in got.values())


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


def testGridForTarget_AddsAValueAboveTheTargetOnlyWhenTheGridTopsOutBelow():
  grid = allocation.SENSITIVITY_GRID
  assert allocation.grid_for_target(grid, 0.98) == tuple(sorted(grid))
  assert allocation.grid_for_target(grid, 0.99) == tuple(sorted(grid)) + (
      pytest.approx(0.995),)
  assert allocation.grid_for_target((0.5, 0.0, 0.5), 0.0) == (0.0, 0.5)


@pytest.mark.parametrize('target', [0.0, 0.5, 0.9, 0.98, 0.99])
def testPickBySensitivity_WithTheTargetsGrid_MeetsEveryTargetExactly(target):
  infos = pruning.prunable_layers(models.fmnist_cnn())
  grid = allocation.grid_for_target(allocation.SENSITIVITY_GRID, target)
  # Larger layers lose less accuracy per pruned share, as on a real net.
  scan = {i.name: {s: 0.9 - s ** 2 / (1 + k) for s in grid}
          for k, i in enumerate(infos)}
  got = allocation.pick_by_sensitivity(infos, scan, target)
  assert pruning.global_sparsity(infos, got) == pytest.approx(target, abs=1e-6)


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


def testBudgetSparsity_FlopsWeighEachLayerByItsMultiplyAccumulates():
  # Computed by hand: a (10 weights, 1000 MACs) at 0.5, b (100, 100) dense.
  infos = [pruning.LayerInfo(0, 'a', 'conv', (1, 1, 2, 5), 10, 1000, 0.0, 0.0),
           pruning.LayerInfo(1, 'b', 'dense', (10, 10), 100, 100, 0.0, 0.0)]
  sparsity = {'a': 0.5, 'b': 0.0}
  assert pruning.budget_sparsity(infos, sparsity, 'params') == pytest.approx(5 / 110)
  assert pruning.budget_sparsity(infos, sparsity, 'flops') == pytest.approx(500 / 1100)
  with pytest.raises(ValueError, match='prune.budget must be one of'):
    pruning.budget_sparsity(infos, sparsity, 'latency')


@pytest.mark.parametrize('target', [0.5, 0.9, 0.98])
@pytest.mark.parametrize('method', ['uniform', 'global_magnitude', 'lamp',
                                    'erk', 'lamp+erk'])
def testFreeMethods_FlopsBudget_MeetTheTargetInFlops(method, target):
  keras.utils.set_random_seed(0)
  model = models.fmnist_resnet()
  infos = pruning.prunable_layers(model)
  got = allocation.allocate(method, model, target, budget='flops')
  assert pruning.budget_sparsity(infos, got, 'flops') == pytest.approx(
      target, abs=1e-3)


def testLamp_FlopsBudget_PrunesAPrefixOfTheSameRanking():
  # Under a FLOPs budget LAMP prunes its own ranking further or less far:
  # the parameter target it ends at gives the same per-layer counts.
  keras.utils.set_random_seed(0)
  model = models.fmnist_resnet()
  infos = pruning.prunable_layers(model)
  got = allocation.lamp(model, 0.9, budget='flops')
  same = allocation.lamp(model, pruning.global_sparsity(infos, got))
  for info in infos:
    assert got[info.name] * info.params == pytest.approx(
        same[info.name] * info.params, abs=1.0), info.name


def testErk_FlopsBudget_SameShapeOfDensities_ScaledToTheFlops():
  # ERK's densities keep their ratios among the layers neither keeps dense
  # (RigL's rule keeps a layer dense whose density would exceed 1); only the
  # scale differs.
  keras.utils.set_random_seed(0)
  model = models.fmnist_resnet()
  by_params = allocation.erk(model, 0.95)
  by_flops = allocation.erk(model, 0.95, budget='flops')
  ratios = [(1 - by_flops[n]) / (1 - by_params[n]) for n in by_params
            if by_params[n] > 0 and by_flops[n] > 0]
  assert len(ratios) >= 14
  assert max(ratios) == pytest.approx(min(ratios), rel=1e-9)
