"""Tests for purl_tf.data, on real Fashion-MNIST and hand-made files."""

import gzip
import os
import struct

import ml_collections
import numpy as np
import pytest

from purl_tf import config_defaults, data
from purl_tf.compat import tf


def _write_idx(path, array):
  header = bytes([0, 0, 8, array.ndim]) + struct.pack(
      '>' + 'I' * array.ndim, *array.shape)
  with gzip.open(path, 'wb') as f:
    f.write(header + array.astype(np.uint8).tobytes())


def _tiny_fmnist_dir(tmp_path, n_train=50, n_test=20):
  rng = np.random.RandomState(0)
  _write_idx(tmp_path / 'train-images-idx3-ubyte.gz', rng.randint(0, 255, (n_train, 28, 28)))
  _write_idx(tmp_path / 'train-labels-idx1-ubyte.gz', np.arange(n_train) % 10)
  _write_idx(tmp_path / 't10k-images-idx3-ubyte.gz', rng.randint(0, 255, (n_test, 28, 28)))
  _write_idx(tmp_path / 't10k-labels-idx1-ubyte.gz', np.arange(n_test) % 10)
  return str(tmp_path)


def _config(**overrides):
  config = config_defaults.base_config().data
  config.update(overrides)
  return config


def testReadIdx_RoundTripsAndRejectsTruncatedFiles(tmp_path):
  array = np.arange(24).reshape(2, 3, 4)
  path = str(tmp_path / 'x.gz')
  _write_idx(path, array)
  np.testing.assert_array_equal(data.read_idx(path), array)
  with gzip.open(path, 'rb') as f:
    body = f.read()
  with gzip.open(path, 'wb') as f:
    f.write(body[:-3])
  with pytest.raises(data.DataError, match='truncated'):
    data.read_idx(path)


def testRealFashionMnist_ShapesAndCounts():
  (xt, yt), (xe, ye) = data.load_fashion_mnist()
  assert xt.shape == (60000, 28, 28) and xe.shape == (10000, 28, 28)
  assert set(np.unique(yt)) == set(range(10)) and ye.shape == (10000,)


def testSplits_RewardIsCarvedFromTrainingAndDisjoint(tmp_path):
  config = _config(dir=_tiny_fmnist_dir(tmp_path), reward_size=10, batch_size=5)
  splits = data.get_splits(config, seed=3)
  assert (splits.num_train, splits.num_reward, splits.num_test) == (40, 10, 20)
  assert splits.input_shape == (28, 28, 1)

  def images(ds):
    return {x.tobytes() for xb, _ in ds for x in xb.numpy()}
  train, reward, test = images(splits.train), images(splits.reward), images(splits.test)
  assert len(reward) == 10 and not train & reward and not test & reward
  x, _ = next(iter(splits.train))
  assert x.dtype == tf.float32 and float(tf.reduce_max(x)) <= 1.0


def testAutotuneOnOrOff_SameBatchesInTheSameOrder(tmp_path):
  # data.autotune changes only how fast the batches come: the config digest
  # of the benchmark leaves it out, and cells measured with it on stand.
  fmnist = _tiny_fmnist_dir(tmp_path, n_train=300, n_test=40)

  def batches(autotune):
    config = _config(dir=fmnist, reward_size=30, batch_size=16,
                     autotune=autotune)
    splits = data.get_splits(config, seed=5)
    out = []
    for ds in (splits.train, splits.train, splits.fresh_train(),
               splits.search_train, splits.reward, splits.test):
      out.append([(x.numpy().tobytes(), y.numpy().tobytes()) for x, y in ds])
    return out

  on, off = batches(True), batches(False)
  assert on == off
  # Two passes of the training split are shuffled differently: the check
  # compares shuffled data, not the input order.
  assert on[0] != on[1]


def testMissingDirectory_ErrorNamesTheFix(tmp_path):
  with pytest.raises(data.DataError, match='apt-get install -y dataset-fashion-mnist'):
    data.get_splits(_config(dir=str(tmp_path / 'nope')))


def testMissingFile_ErrorNamesTheFile(tmp_path):
  d = _tiny_fmnist_dir(tmp_path)
  os.remove(os.path.join(d, 't10k-labels-idx1-ubyte.gz'))
  with pytest.raises(data.DataError, match='t10k-labels-idx1-ubyte.gz'):
    data.get_splits(_config(dir=d))


@pytest.mark.parametrize('size', [0, 50])
def testEmptyOrWholeRewardSplit_RaisesDataError(tmp_path, size):
  with pytest.raises(data.DataError, match='reward split'):
    data.get_splits(_config(dir=_tiny_fmnist_dir(tmp_path), reward_size=size))


def testUnknownTfdsName_RaisesDataError(tmp_path):
  with pytest.raises(data.DataError, match='does not know dataset'):
    data.get_splits(_config(name='no_such_dataset_xyz', tfds_data_dir=str(tmp_path)))


def testImagenetNotPrepared_ErrorNamesManualDir(tmp_path):
  with pytest.raises(data.DataError, match='manual_dir'):
    data.get_splits(_config(name='imagenet2012', tfds_data_dir=str(tmp_path),
                            manual_dir=str(tmp_path / 'manual')))


@pytest.mark.parametrize('kind', ['resnet50', 'mobilenet_v2'])
def testImagenetPreprocessing_GivesSquareRgbOfTheFamilyRange(kind):
  image = tf.constant(np.random.RandomState(0).randint(0, 255, (50, 70, 3)), tf.uint8)
  for training in (True, False):
    out, label = data.preprocess_fn(kind, 32, training)(image, tf.constant(3))
    assert out.shape == (32, 32, 3) and int(label) == 3
  if kind == 'mobilenet_v2':
    assert float(tf.reduce_min(out)) >= -1.0 and float(tf.reduce_max(out)) <= 1.0
  else:
    assert float(tf.reduce_min(out)) < 0  # mean-subtracted


def testSyntheticImagenet_HasTheRequestedShape():
  config = _config(name='synthetic_imagenet', preprocess='mobilenet_v2',
                   image_size=32, reward_size=16, batch_size=8,
                   train_size=48, test_size=16)
  splits = data.get_splits(config)
  assert splits.input_shape == (32, 32, 3)
  assert (splits.num_train, splits.num_reward, splits.num_test) == (48, 16, 16)


def _jpeg_folder(root, counts=(('train', 10), ('test', 3))):
  rng = np.random.RandomState(0)
  for split, n in counts:
    for label in ('n01440764', 'n01443537', 'n01484850'):
      d = os.path.join(root, split, label)
      os.makedirs(d)
      for k in range(n):
        image = rng.randint(0, 255, (40 + 3 * k, 56, 3)).astype(np.uint8)
        tf.io.write_file(os.path.join(d, f'{k}.JPEG'), tf.io.encode_jpeg(image))
  return root


@pytest.mark.parametrize('kind', ['resnet50', 'mobilenet_v2'])
def testImageFolder_ImagenetPipelineOnGeneratedJpegs(tmp_path, kind):
  root = _jpeg_folder(str(tmp_path / 'imagenet'))
  config = _config(name='image_folder', dir=root, preprocess=kind,
                   image_size=32, reward_size=6, batch_size=4)
  splits = data.get_splits(config, seed=0)
  assert (splits.num_train, splits.num_reward, splits.num_test) == (24, 6, 9)
  assert splits.num_classes == 3 and splits.input_shape == (32, 32, 3)
  labels = [int(y) for _, yb in splits.reward for y in yb.numpy()]
  assert len(labels) == 6 and len(set(labels)) == 3  # every class in the reward split
  n_train = sum(int(x.shape[0]) for x, _ in splits.train)
  assert n_train == 24  # 6 batches of 4, none dropped
  x, _ = next(iter(splits.test))
  assert x.shape[1:] == (32, 32, 3) and x.dtype == tf.float32


def testImageFolder_WithoutTrainDir_RaisesDataError(tmp_path):
  with pytest.raises(data.DataError, match='train/'):
    data.get_splits(_config(name='image_folder', dir=str(tmp_path)))
