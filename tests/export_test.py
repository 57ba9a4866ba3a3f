"""Tests for purl_tf.export: TF Serving layout, signature, atomic publish."""

import os
from unittest import mock

import numpy as np
import pytest

from purl_tf import export, models, pruning
from purl_tf.compat import tf


def testExport_RoundTripsThroughServingSignature(tmp_path):
  model = models.fmnist_cnn()
  path = export.export_for_serving(model, str(tmp_path), 'fmnist')
  assert path == os.path.join(str(tmp_path), 'fmnist', '1')
  assert os.path.exists(os.path.join(path, 'saved_model.pb'))
  assert os.path.isdir(os.path.join(path, 'variables'))
  loaded = tf.saved_model.load(path)
  serve = loaded.signatures['serving_default']
  assert list(serve.structured_input_signature[1]) == [export.INPUT_NAME]
  assert list(serve.structured_outputs) == [export.OUTPUT_NAME]
  x = np.random.RandomState(0).rand(4, 28, 28, 1).astype(np.float32)
  got = serve(image=tf.constant(x))[export.OUTPUT_NAME].numpy()
  np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=1e-6)


def testExport_NextVersionAndNoLeftovers(tmp_path):
  model = models.fmnist_cnn()
  export.export_for_serving(model, str(tmp_path), 'm')
  second = export.export_for_serving(model, str(tmp_path), 'm')
  assert second.endswith(os.path.join('m', '2'))
  assert sorted(os.listdir(tmp_path / 'm')) == ['1', '2']
  with pytest.raises(ValueError, match='exists already'):
    export.export_for_serving(model, str(tmp_path), 'm', version=2)


def testInterruptedExport_LeavesNoVersionDirectory(tmp_path):
  model = models.fmnist_cnn()
  with mock.patch.object(tf.saved_model, 'save', side_effect=KeyboardInterrupt):
    with pytest.raises(KeyboardInterrupt):
      export.export_for_serving(model, str(tmp_path), 'm')
  assert os.listdir(tmp_path / 'm') == []


def testGzipSize_PrunedIsSmaller(tmp_path):
  model = models.fmnist_cnn()
  dense = export.gzip_size_of_model(model)
  for layer in model.layers:
    if layer.weights:
      layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
  assert export.gzip_size_of_model(model) < 0.2 * dense


def testGzipSize_UnprunedNetAfterTrainingIsOneToOne(tmp_path):
  # The trained dense net has Adam moments; the stripped clone has none. Both
  # are exported without optimizer state, so their sizes match.
  model = models.fmnist_cnn()
  model.compile('adam', 'sparse_categorical_crossentropy')
  x = np.random.RandomState(0).rand(8, 28, 28, 1).astype(np.float32)
  model.fit(x, np.arange(8) % 10, epochs=1, verbose=0)
  assert model.optimizer.variables  # the state that must not be counted
  stripped = pruning.strip(pruning.apply_sparsity_map(
      model, {i.name: 0.0 for i in pruning.prunable_layers(model)}))
  ratio = export.gzip_size_of_model(stripped) / export.gzip_size_of_model(model)
  assert ratio == pytest.approx(1.0, abs=0.02)


def testOutputs_CarryTheUmaskModeForOtherUsers(tmp_path):
  from purl_tf import io_utils  # pylint: disable=g-import-not-at-top
  old = os.umask(0o022)
  try:
    path = export.export_for_serving(models.fmnist_cnn(), str(tmp_path), 'm')
    json_path = str(tmp_path / 'summary.json')
    io_utils.write_json_atomic(json_path, {'a': 1})
  finally:
    os.umask(old)
  assert os.stat(path).st_mode & 0o777 == 0o755
  assert os.stat(json_path).st_mode & 0o777 == 0o644
  for root, dirs, files in os.walk(path):
    for name in dirs:
      assert os.stat(os.path.join(root, name)).st_mode & 0o005 == 0o005
    for name in files:
      assert os.stat(os.path.join(root, name)).st_mode & 0o004, name
