"""Export a stripped model as a SavedModel in TF Serving's layout.

    <export_dir>/<model_name>/<version>/saved_model.pb
                                        variables/

The `serving_default` signature takes one float32 tensor named `image`
(`[batch, height, width, channels]`, preprocessed as in training) and returns
`{'probabilities': [batch, num_classes]}`. A version is written under a hidden
temporary name and renamed into place, so TF Serving (which watches the
directory for new numeric versions) never sees a half-written one.

What is saved is the signature and the model's variables, nothing else: no
optimizer state (a trained model's Adam moments would triple its size) and
no Keras metadata. Sizes (`gzip_size_of_model`) therefore compare like with
like: a dense and a pruned net exported the same way.
"""

import os
import shutil
import tarfile
import tempfile
from typing import Optional

from purl_tf import io_utils, pruning
from purl_tf.compat import keras, tf

INPUT_NAME = 'image'
OUTPUT_NAME = 'probabilities'


def next_version(model_dir: str) -> int:
  """1 + the largest numeric version under `model_dir` (1 when none)."""
  if not os.path.isdir(model_dir):
    return 1
  versions = [int(d) for d in os.listdir(model_dir) if d.isdigit()]
  return max(versions, default=0) + 1


def serving_function(model: keras.Model, preprocess=None):
  """The `serving_default` concrete function of `model`."""
  spec = tf.TensorSpec([None] + list(model.input_shape[1:]), tf.float32,
                       name=INPUT_NAME)

  @tf.function(input_signature=[spec])
  def serve(image):
    x = preprocess(image) if preprocess is not None else image
    return {OUTPUT_NAME: model(x, training=False)}

  return serve.get_concrete_function()


def export_for_serving(model: keras.Model, export_dir: str, model_name: str,
                       version: Optional[int] = None, preprocess=None) -> str:
  """Writes `model` as `<export_dir>/<model_name>/<version>` atomically.

  Args:
    model: a stripped (unwrapped) Keras model.
    export_dir: the TF Serving model base directory's parent.
    model_name: the model's name in TF Serving.
    version: the version number; the next free one when None.
    preprocess: optional `f(image) -> model input`, folded into the signature.

  Returns:
    The path of the written version directory.

  Raises:
    ValueError: bad model name or version, or the version already exists.
  """
  if not model_name or os.sep in model_name or model_name.startswith('.'):
    raise ValueError(f'bad model name {model_name!r}')
  model_dir = os.path.join(export_dir, model_name)
  os.makedirs(model_dir, exist_ok=True)
  if version is None:
    version = next_version(model_dir)
  if int(version) <= 0:
    raise ValueError(f'version must be a positive integer, got {version}')
  final = os.path.join(model_dir, str(int(version)))
  if os.path.exists(final):
    raise ValueError(f'{final} exists already; pick another version')
  tmp = tempfile.mkdtemp(prefix=f'.tmp-{int(version)}-', dir=model_dir)
  try:
    # mkdtemp makes the directory 0700; TF Serving may run as another user.
    os.chmod(tmp, io_utils.umask_mode(0o777))
    serve = serving_function(model, preprocess)
    root = tf.Module()
    # The signature's captured variables must be reachable from the root:
    # the model's own (weights, BatchNormalization statistics) and any the
    # preprocessing holds. The optimizer is deliberately not.
    root.model_variables = list(model.variables)
    if isinstance(preprocess, tf.Module) or hasattr(preprocess, 'variables'):
      root.preprocess = preprocess
    tf.saved_model.save(root, tmp, signatures={'serving_default': serve})
    os.rename(tmp, final)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return final


def save_keras_model(model: keras.Model, path: str):
  """Saves a stripped model as a Keras file, atomically, with the user's mode.

  The file holds the architecture, the weights (zeros included: it is as
  large as the dense net's) and the compile settings, without optimizer
  state. `load_keras_model` (or `tf_keras.models.load_model` with purl_tf
  imported first) reloads it to go on training, quantize or convert.

  Raises:
    ValueError: `model` still holds pruning wrappers (strip it first).
  """
  if pruning.wrappers(model):
    raise ValueError('save_keras_model: the model still holds pruning '
                     'wrappers; call purl_tf.strip(model) first')
  if not path.endswith('.keras'):
    raise ValueError(f'a Keras model file must end in .keras, got {path!r}')
  def write(tmp):
    model.save(tmp, overwrite=True)
    os.chmod(tmp, io_utils.umask_mode())  # Keras writes a new file
  io_utils.publish(path, write, '.keras')


def load_keras_model(path: str) -> keras.Model:
  """Reloads a model `save_keras_model` wrote (a purl_tf run's pruned.keras).

  Raises:
    ValueError: no such file, or not a Keras model file.
  """
  if not os.path.isfile(path):
    raise ValueError(f'no Keras model file at {path}')
  try:
    return keras.models.load_model(path)
  except (OSError, ValueError, KeyError) as e:
    raise ValueError(f'{path} is not a readable Keras model file ({e})'
                     ) from None


def gzip_size(path: str) -> int:
  """Bytes of a gzipped tar of `path` (a SavedModel directory or a file)."""
  with tempfile.TemporaryDirectory() as d:
    out = os.path.join(d, 'x.tar.gz')
    with tarfile.open(out, 'w:gz') as tar:
      tar.add(path, arcname='m')
    return os.path.getsize(out)


def gzip_size_of_model(model: keras.Model) -> int:
  """Bytes of `model` exported by `export_for_serving` (no optimizer state),
  as a gzipped tar of the SavedModel directory: dense and pruned alike."""
  with tempfile.TemporaryDirectory() as d:
    path = export_for_serving(model, d, 'm', version=1)
    return gzip_size(path)
