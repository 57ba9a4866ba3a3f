"""The public Python API, used as a user's own Keras code would."""

import os
import subprocess
import sys

import numpy as np
import pytest

import purl_tf
from purl_tf import config_defaults, data, models
from purl_tf.compat import keras, tf
from tests.conftest import REPO, subprocess_env, tiny_search_config


@pytest.fixture(scope='module')
def splits():
  config = config_defaults.base_config().data
  config.update(train_size=1024, reward_size=256, test_size=256, batch_size=64)
  return data.get_splits(config)


def _trained(splits):
  model = models.fmnist_cnn()
  model.compile('adam', 'sparse_categorical_crossentropy', metrics=['accuracy'])
  model.fit(splits.train, epochs=1, verbose=0)
  return model


def testPublicApi_OnlyReExports():
  for name in purl_tf.__all__:
    assert hasattr(purl_tf, name), name
  assert purl_tf.search.__module__ == 'purl_tf.keras_api'
  assert purl_tf.strip.__module__ == 'purl_tf.pruning'
  assert purl_tf.recalibrate_batchnorm.__module__ == 'purl_tf.batchnorm'


def testSearch_ReturnsPolicyMeetingTheBudgetAndLeavesModelAlone(splits, tmp_path):
  model = _trained(splits)
  before = [w.copy() for w in model.get_weights()]
  policy = purl_tf.search(model, splits.train, splits.reward, tiny_search_config(),
                          target_sparsity=0.8, workdir=str(tmp_path),
                          verbose=False)
  assert set(policy.sparsity) == {'conv1', 'conv2', 'fc1', 'fc2'}
  assert policy.metrics['global_sparsity'] >= 0.8 - 0.005
  assert os.path.exists(tmp_path / 'policy.json')
  for a, b in zip(before, model.get_weights()):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize('method', ['uniform', 'global_magnitude', 'lamp',
                                    'erk', 'sensitivity'])
def testAllocate_EveryMethodReachesTheTargetAsAPolicy(splits, method):
  model = _trained(splits)
  policy = purl_tf.allocate(model, method, 0.9, reward_ds=splits.reward,
                            eval_batches=1)
  assert policy.metrics['method'] == method
  assert policy.metrics['global_sparsity'] == pytest.approx(0.9, abs=1e-6)
  policy.check(model)
  pruned = purl_tf.apply(model, policy)
  pruned.compile('adam', 'sparse_categorical_crossentropy')
  pruned.fit(splits.train, epochs=1, steps_per_epoch=1, verbose=0,
             callbacks=purl_tf.callbacks())
  report = purl_tf.sparsity_report(purl_tf.strip(pruned))
  assert report['global'] == pytest.approx(0.9, abs=0.001)


def testAllocate_SensitivityWithoutRewardData_RaisesValueError(splits):
  with pytest.raises(ValueError, match='reward split'):
    purl_tf.allocate(models.fmnist_cnn(), 'sensitivity', 0.9)
  with pytest.raises(ValueError, match='unknown allocation'):
    purl_tf.allocate(models.fmnist_cnn(), 'magnitude', 0.9)


def testPolicy_AppliesToAFreshModelInTheUsersOwnFit(splits, tmp_path):
  policy = purl_tf.Policy({'conv1': 0.3, 'conv2': 0.6, 'fc1': 0.95, 'fc2': 0.5},
                          purl_tf.policy.fingerprint(models.fmnist_cnn()))
  path = str(tmp_path / 'policy.json')
  policy.save(path)
  fresh = models.fmnist_cnn()  # same architecture, new weights
  pruned = purl_tf.apply(fresh, path, schedule=purl_tf.polynomial_schedule(
      end_step=8, frequency=2))
  pruned.compile('adam', 'sparse_categorical_crossentropy', metrics=['accuracy'])
  pruned.fit(splits.train, epochs=1, steps_per_epoch=12, verbose=0,
             callbacks=purl_tf.callbacks(log_dir=str(tmp_path / 'logs')))
  report = purl_tf.sparsity_report(purl_tf.strip(pruned))
  for name, target in policy.sparsity.items():
    assert report['layers'][name] == pytest.approx(target, abs=0.005), name
  assert os.listdir(tmp_path / 'logs')


def testPolicyForAnotherModel_NamesTheMismatchedLayers(tmp_path):
  policy = purl_tf.Policy({'conv1': 0.5, 'other_dense': 0.5})
  with pytest.raises(ValueError, match=r"other_dense.*conv2"):
    purl_tf.apply(models.fmnist_cnn(), policy)
  resnet_policy = purl_tf.Policy(
      {n: 0.5 for n in ('conv1', 'conv2', 'fc1', 'fc2')}, fingerprint='0' * 16)
  with pytest.raises(ValueError, match='fingerprint'):
    purl_tf.apply(models.fmnist_cnn(), resnet_policy)


@pytest.mark.parametrize('text,match', [
    ('{not json', 'not valid JSON'),
    ('{"sparsity": {"fc1": 1.5}}', 'outside'),
    ('[1, 2]', 'sparsity'),
])
def testMalformedPolicyFile_RaisesValueError(tmp_path, text, match):
  path = tmp_path / 'p.json'
  path.write_text(text)
  with pytest.raises(ValueError, match=match):
    purl_tf.Policy.load(str(path))


def testExample_RunsEndToEnd(tmp_path):
  result = subprocess.run(
      [sys.executable, os.path.join(REPO, 'examples', 'keras_integration.py'),
       '--quick', f'--export_dir={tmp_path}'],
      capture_output=True, text=True, env=subprocess_env(), timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'exported to' in result.stdout
  sparsity = float(result.stdout.split('global sparsity')[1].split()[0])
  assert sparsity >= 0.895
  assert os.path.exists(tmp_path / 'fmnist_keras' / '1' / 'saved_model.pb')


def _bad_inputs(splits):
  x = np.zeros((64, 28, 28, 1), np.float32)
  y = np.zeros((64,), np.int64)
  mk = tf.data.Dataset.from_tensor_slices
  return {
      'numpy': ((x, y), 'must be a batched tf.data.Dataset'),
      'unbatched': (mk((x, y)), 'is not batched'),
      'one-hot': (mk((x, np.eye(10, dtype=np.float32)[y])).batch(32),
                  'one-hot labels'),
      'other-shape': (mk((np.zeros((64, 32, 32, 3), np.float32), y)).batch(32),
                      r'images have shape \(None, 32, 32, 3\)'),
      'empty': (mk((x, y)).batch(32).take(0), 'is empty'),
      'images-only': (mk(x).batch(32), r'must yield \(image, label\) pairs'),
  }


@pytest.mark.parametrize('case', ['numpy', 'unbatched', 'one-hot',
                                  'other-shape', 'empty', 'images-only'])
def testSearchWithBadData_OneValueErrorSayingWhatToPass(splits, case):
  bad, match = _bad_inputs(splits)[case]
  model = models.fmnist_cnn()
  with pytest.raises(ValueError, match=match) as info:
    purl_tf.search(model, splits.train, bad, tiny_search_config(),
                   target_sparsity=0.8, verbose=False)
  assert 'reward_ds' in str(info.value)
  assert len(str(info.value).splitlines()) == 1
