"""Tests for purl_tf.tflite_export: formats, sparse storage, agreement, errors."""

import os

import numpy as np
import pytest

from purl_tf import allocation, config_defaults, io_utils, models, pruning
from purl_tf import tflite_export
from purl_tf.compat import keras, tf
from tests.conftest import REPO


def _pruned(model, target, method='lamp'):
  """`model` with `method`'s allocation at `target` masked in, stripped."""
  return pruning.pruned_at_once(model, allocation.allocate(method, model, target))


def _images(shape, n=64, seed=0):
  x = np.random.RandomState(seed).rand(n, *shape).astype(np.float32)
  return tf.data.Dataset.from_tensor_slices(
      (x, np.arange(n, dtype=np.int64) % 10)).batch(24)  # a short last batch


@pytest.mark.parametrize('value,formats', [
    ('none', ()), ('', ()), ('float32', ('float32',)), ('int8', ('int8',)),
    ('float32,int8', ('float32', 'int8')), (' int8 , float32 ', ('int8', 'float32')),
])
def testParseFormats_ReadsWhatTheConfigNames(value, formats):
  assert tflite_export.parse_formats(value) == formats


@pytest.mark.parametrize('value,match', [
    ('fp16', "unknown format 'fp16'"), ('float32,float32', 'twice'),
])
def testParseFormats_BadValue_RaisesNamingTheKey(value, match):
  with pytest.raises(ValueError, match=match) as e:
    tflite_export.parse_formats(value)
  assert 'export.tflite' in str(e.value)


def testConvert_UnprunedNet_SameSizeAsTheDenseFile():
  # The sparse format costs nothing where there are no zeros: the stripped
  # clone of a dense net converts to the dense net's size.
  model = models.fmnist_cnn()
  dense = len(tflite_export.convert(model))
  unpruned = len(tflite_export.convert(_pruned(model, 0.0, 'uniform')))
  assert unpruned / dense == pytest.approx(1.0, abs=0.02)


def testConvert_PrunedResNet_StoresZerosSparse_AndAgreesWithKeras():
  model = models.fmnist_resnet()
  pruned = _pruned(model, 0.95)
  dense = len(tflite_export.convert(model))
  data = tflite_export.convert(pruned)
  # 5% of the weights kept, each with an index: well under a third.
  assert len(data) < 0.3 * dense
  result = tflite_export.check(data, pruned, _images((28, 28, 1)))
  assert result['examples'] == 64
  assert result['agreement'] >= tflite_export.MIN_AGREEMENT
  assert result['accuracy'] == result['keras_accuracy']
  assert tflite_export.sparse_weights(data)  # some tensors stored sparse


def testConvert_Int8_IsSmallerStill_AndRunsOnBuiltinKernelsWhereXnnpackCannot():
  pruned = _pruned(models.fmnist_cnn(), 0.9)
  float32 = tflite_export.convert(pruned, 'float32')
  int8 = tflite_export.convert(pruned, 'int8')
  assert len(int8) < 0.75 * len(float32)
  x = np.random.RandomState(1).rand(5, 28, 28, 1).astype(np.float32)
  want = pruned(x, training=False).numpy()
  run = tflite_export.Runner(int8)
  got = run(x)
  # Dynamic-range quantization moves probabilities by a little.
  np.testing.assert_allclose(got, want, atol=0.05)
  assert run.delegate in ('xnnpack', 'builtin')
  builtin = tflite_export.Runner(float32, xnnpack=False)
  np.testing.assert_allclose(builtin(x), want, atol=1e-5)
  assert builtin.delegate == 'builtin'


@pytest.mark.slow  # about 40 s: MobileNet-V2 builds and converts slowly
def testConvert_MobileNetV2Smoke_DepthwiseLayersConvertAndAgree():
  config = config_defaults.load(os.path.join(
      REPO, 'configs', 'mobilenet_v2_imagenet.py') + ':smoke')
  size = int(config.data.image_size)
  keras.utils.set_random_seed(0)
  model = models.build(config.model, (size, size, 3), 10)
  pruned = _pruned(model, 0.9)
  data = tflite_export.convert(pruned)
  result = tflite_export.check(data, pruned, _images((size, size, 3), n=32))
  assert result['agreement'] >= tflite_export.MIN_AGREEMENT
  depthwise = [i.name for i in pruning.prunable_layers(model)
               if i.kind == 'depthwise']
  assert depthwise
  stored = tflite_export.sparse_weights(data)
  assert stored  # which ones the README states (benchmarks/tflite_export.py)


def testConvert_UnsupportedOp_NamesTheLayerAndTheOp():
  inputs = keras.Input((8,))
  x = keras.layers.Dense(4)(inputs)
  x = keras.layers.Lambda(lambda t: tf.math.betainc(t, t, tf.nn.sigmoid(t)),
                          name='special_fn')(x)
  model = keras.Model(inputs, keras.layers.Dense(3, activation='softmax')(x))
  with pytest.raises(ValueError) as e:
    tflite_export.convert(model)
  message = str(e.value)
  assert "layer 'special_fn'" in message and "op 'tf.Betainc'" in message
  assert '\n' not in message  # one line, not pages of MLIR


def testWriteBytesAtomic_IsAtomicWithTheUmaskMode(tmp_path):
  # How a run writes its TFLite files.
  old = os.umask(0o027)
  try:
    path = str(tmp_path / 'm.tflite')
    io_utils.write_bytes_atomic(path, b'abc')
  finally:
    os.umask(old)
  assert open(path, 'rb').read() == b'abc'
  assert os.stat(path).st_mode & 0o777 == 0o640
  assert os.listdir(tmp_path) == ['m.tflite']


def testCheck_EmptyDataset_Raises():
  model = models.fmnist_cnn()
  data = tflite_export.convert(model)
  empty = _images((28, 28, 1)).take(0)
  with pytest.raises(ValueError, match='empty'):
    tflite_export.check(data, model, empty)
