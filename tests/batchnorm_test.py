"""BatchNormalization statistics re-estimated from data (purl_tf/batchnorm.py).

Data are seeded numpy arrays in an unshuffled pipeline, so the expected
statistics can be computed by hand from the same batches.
"""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from purl_tf import batchnorm, pruning, train
from purl_tf.compat import keras, tf
from tests.conftest import REPO, subprocess_env


def _bn_net(frozen=False):
  inputs = keras.Input((8, 8, 3), name='image')
  x = keras.layers.Conv2D(4, 3, name='conv')(inputs)
  bn = keras.layers.BatchNormalization(name='bn')
  bn.trainable = not frozen
  x = bn(x)
  x = keras.layers.GlobalAveragePooling2D()(x)
  outputs = keras.layers.Dense(3, activation='softmax', name='fc')(x)
  return keras.Model(inputs, outputs)


def _data(batches=3, batch=16, shift=2.0):
  rng = np.random.RandomState(0)
  x = (rng.rand(batches * batch, 8, 8, 3) * 3 + shift).astype('float32')
  y = rng.randint(0, 3, batches * batch)
  return x, tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)


def _bn_input_batches(model, ds):
  conv = keras.Model(model.input, model.get_layer('conv').output)
  return [conv(x).numpy().reshape(-1, 4) for x, _ in ds]


def testRecalibrate_SetsMovingStatsToBatchAverages():
  model = _bn_net()
  _, ds = _data()
  used = batchnorm.recalibrate(model, ds, 3)
  assert used == 3
  feats = _bn_input_batches(model, ds)
  bn = model.get_layer('bn')
  want_mean = np.mean([f.mean(0) for f in feats], 0)
  # Keras' fused batch norm hands the unbiased batch variance to the moving
  # average.
  want_var = np.mean([f.var(0, ddof=1) for f in feats], 0)
  np.testing.assert_allclose(bn.moving_mean.numpy(), want_mean, rtol=1e-4)
  np.testing.assert_allclose(bn.moving_variance.numpy(), want_var, rtol=1e-3)
  # Before, they were the initial 0 and 1: the check above could fail.
  assert np.abs(want_mean).min() > 0.1


def testRecalibrate_FixesInferenceOutputsAfterTheInputsShift():
  model = _bn_net()
  x, ds = _data(shift=5.0)
  train_mode = model(x[:16], training=True).numpy()
  before = np.abs(model(x[:16], training=False).numpy() - train_mode).max()
  batchnorm.recalibrate(model, ds.take(1), 1)
  after = np.abs(model(x[:16], training=False).numpy() - train_mode).max()
  assert after < 1e-3 < before


def testRepeatedCalls_NeitherRetraceNorCreateVariables_AndRestoreMomentum():
  model = _bn_net()
  _, ds = _data()
  recal = batchnorm.BatchNormRecalibrator(model)
  recal(ds, 2)
  n_vars = len(recal._sums)  # pylint: disable=protected-access
  recal(ds, 3)
  assert recal._step.experimental_get_tracing_count() == 1  # pylint: disable=protected-access
  assert len(recal._sums) == n_vars  # pylint: disable=protected-access
  assert model.get_layer('bn').momentum == pytest.approx(0.99)


def testModelWithoutBatchNorm_IsNoOp():
  inputs = keras.Input((8, 8, 3))
  outputs = keras.layers.Dense(2)(keras.layers.Flatten()(inputs))
  model = keras.Model(inputs, outputs)
  before = [w.copy() for w in model.get_weights()]
  _, ds = _data()
  assert batchnorm.recalibrate(model, ds, 3) == 0
  for a, b in zip(before, model.get_weights()):
    np.testing.assert_array_equal(a, b)


def testFrozenBatchNorm_KeepsItsStatistics():
  model = _bn_net(frozen=True)
  _, ds = _data()
  assert batchnorm.recalibrate(model, ds, 3) == 0
  np.testing.assert_array_equal(model.get_layer('bn').moving_mean.numpy(),
                                np.zeros(4))


def testNegativeBatches_Raises():
  with pytest.raises(ValueError, match='batches'):
    batchnorm.recalibrate(_bn_net(), _data()[1], -1)


def testUntrainedPruningWrappers_KeepMasksAndStepCounter():
  dense = _bn_net()
  wrapped = pruning.apply_sparsity_map(
      dense, {'conv': 0.5, 'fc': 0.5},
      schedule_fn=lambda name, s: pruning.VariableSparsity(s, 0))
  wrappers = pruning.wrappers(wrapped)
  pruning.prune_now(wrappers['conv'], 0.5)
  masks = [m.numpy().copy() for _, m, _ in wrappers['conv'].pruning_vars]
  _, ds = _data()
  assert batchnorm.recalibrate(wrapped, ds, 2) == 2
  assert int(wrappers['conv'].pruning_step.numpy()) == -1
  for want, (_, mask, _) in zip(masks, wrappers['conv'].pruning_vars):
    np.testing.assert_array_equal(mask.numpy(), want)
  assert abs(float(np.mean(wrappers['conv'].pruning_vars[0][1].numpy())) - 0.5) < 0.05


MIRRORED_SCRIPT = textwrap.dedent('''
    import json
    import numpy as np
    import ml_collections
    import purl_tf
    from purl_tf import batchnorm, train
    from purl_tf.compat import keras, tf
    from tests import batchnorm_test as t

    mirrored = train.get_strategy(ml_collections.ConfigDict(
        {'name': 'mirrored', 'logical_cpus': 2}))
    assert mirrored.num_replicas_in_sync == 2
    out = {}
    for name, strategy in (('default', tf.distribute.get_strategy()),
                           ('mirrored', mirrored)):
      keras.utils.set_random_seed(0)
      with strategy.scope():
        model = t._bn_net()
      _, ds = t._data()
      batchnorm.recalibrate(model, ds, 3, strategy)
      bn = model.get_layer('bn')
      out[name] = [bn.moving_mean.numpy().tolist(),
                   bn.moving_variance.numpy().tolist()]
    print(json.dumps(out))
''')


def testMirroredStrategy_AveragesReplicasToTheSameMean():
  result = subprocess.run([sys.executable, '-c', MIRRORED_SCRIPT], cwd=REPO,
                          env=subprocess_env(), capture_output=True, text=True,
                          timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  out = json.loads(result.stdout.strip().splitlines()[-1])
  # Each replica sees half of every batch: the mean of the halves' means is
  # the batch mean; the variances differ by the halves' spread only.
  np.testing.assert_allclose(out['mirrored'][0], out['default'][0], rtol=1e-4)
  np.testing.assert_allclose(out['mirrored'][1], out['default'][1], rtol=0.2)
