"""The TF Serving contract of an exported model.

The model server binary is not installable here; these tests check what it
relies on: the directory layout, the `serving_default` signature as
`saved_model_cli` shows it, and a `PredictRequest` built for the signature's
input name and dtype, answered through the signature.
"""

import os
import subprocess
import sys

import numpy as np
from tensorflow_serving.apis import predict_pb2

from purl_tf import export, models, pruning
from purl_tf.compat import tf


def _exported(tmp_path):
  model = models.fmnist_cnn()
  wrapped = pruning.apply_sparsity_map(model, {'fc1': 0.0})
  stripped = pruning.strip(wrapped)
  return stripped, export.export_for_serving(stripped, str(tmp_path), 'fmnist')


def testLayout_IsModelNameVersionSavedModel(tmp_path):
  _, path = _exported(tmp_path)
  assert os.path.relpath(path, tmp_path) == os.path.join('fmnist', '1')
  assert sorted(os.listdir(tmp_path / 'fmnist')) == ['1']
  assert {'saved_model.pb', 'variables'} <= set(os.listdir(path))


def testSavedModelCli_ListsTheServingSignature(tmp_path):
  _, path = _exported(tmp_path)
  cli = os.path.join(os.path.dirname(sys.executable), 'saved_model_cli')
  result = subprocess.run([cli, 'show', '--dir', path, '--all'],
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  out = result.stdout
  assert "signature_def['serving_default']" in out
  assert "inputs['image']" in out and 'DT_FLOAT' in out
  assert "outputs['probabilities']" in out and '(-1, 10)' in out


def testPredictRequest_RoundTripsThroughTheSignature(tmp_path):
  model, path = _exported(tmp_path)
  x = np.random.RandomState(0).rand(3, 28, 28, 1).astype(np.float32)
  request = predict_pb2.PredictRequest()
  request.model_spec.name = 'fmnist'
  request.model_spec.signature_name = 'serving_default'
  request.inputs[export.INPUT_NAME].CopyFrom(tf.make_tensor_proto(x))
  wire = request.SerializeToString()

  received = predict_pb2.PredictRequest.FromString(wire)
  serve = tf.saved_model.load(path).signatures[received.model_spec.signature_name]
  spec = serve.structured_input_signature[1][export.INPUT_NAME]
  tensor = tf.make_ndarray(received.inputs[spec.name])
  assert tensor.dtype == spec.dtype.as_numpy_dtype
  outputs = serve(**{spec.name: tf.constant(tensor)})
  response = predict_pb2.PredictResponse()
  response.outputs[export.OUTPUT_NAME].CopyFrom(
      tf.make_tensor_proto(outputs[export.OUTPUT_NAME]))
  got = tf.make_ndarray(predict_pb2.PredictResponse.FromString(
      response.SerializeToString()).outputs[export.OUTPUT_NAME])
  np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=1e-6)
