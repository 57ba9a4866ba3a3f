"""TFLite files of a pruned net, with its zeros stored sparse, checked.

What a pruned net buys on a phone today is size: TFLite's converter stores a
weight tensor in a sparse format (`tf.lite.Optimize.EXPERIMENTAL_SPARSITY`)
when enough of it is zero, and XNNPACK has sparse kernels for some layers on
ARM. Without that flag a pruned net's `.tflite` file is as large as the dense
one's (tfmot issues #722, #760, #570 are users finding exactly that).

  float32  float weights, sparse where the converter finds it pays.
  int8     the same with dynamic-range quantization on top (weights int8,
           activations float), as tfmot's "prune, then quantize" guide does.

`convert` turns a stripped Keras model into a file's bytes, through the same
`serving_default` function the SavedModel export has (input `image`, output
`probabilities`). `check` runs the interpreter over a dataset beside the
Keras model and reports how often their top-1 predictions agree, and both
accuracies: a float32 file that disagrees with its Keras model on more than
`MIN_AGREEMENT` of the images is a conversion bug, not a result.
"""

import re
import warnings
from typing import Dict, Optional, Sequence

import numpy as np

from purl_tf import export
from purl_tf.compat import keras, tf

FORMATS = ('float32', 'int8')
# Share of images whose top-1 class the float32 file must agree on.
MIN_AGREEMENT = 0.999


def parse_formats(value: str) -> Sequence[str]:
  """The formats a config value names: 'none', 'float32', 'int8' or
  'float32,int8'.

  Raises:
    ValueError: an unknown or repeated format.
  """
  text = str(value).strip()
  if text in ('', 'none'):
    return ()
  names = [n.strip() for n in text.split(',')]
  for n in names:
    if n not in FORMATS:
      raise ValueError(f'export.tflite: unknown format {n!r}; "none" or a '
                       f'comma-separated list of {FORMATS}')
  if len(set(names)) != len(names):
    raise ValueError(f'export.tflite lists a format twice: {value!r}')
  return tuple(names)


def _layer_of(location_name: str, layer_names) -> str:
  """The model layer an MLIR location such as 'model/my_layer/Op@fn' is in."""
  parts = location_name.split('@')[0].split('/')
  for part in parts:
    if part in layer_names:
      return part
  return parts[1] if len(parts) > 2 else location_name


def _explain(error: Exception, model: keras.Model) -> Optional[str]:
  """'layer L: op O' for each op the converter refused, from its errors."""
  layer_names = {l.name for l in model.layers}
  found = []
  for err in getattr(error, 'errors', None) or []:
    op = getattr(getattr(err, 'operator', None), 'name', '') or ''
    calls = list(getattr(getattr(err, 'location', None), 'call', []) or [])
    where = next((c.name for c in calls if getattr(c, 'name', '')), '')
    if op:
      found.append(f'layer {_layer_of(where, layer_names)!r}: op {op!r}')
  if not found:  # an older converter: only the message
    ops = sorted(set(re.findall(r"'(tf\.\w+)' op is neither", str(error))))
    found = [f'op {op!r}' for op in ops]
  return '; '.join(dict.fromkeys(found)) or None


def convert(model: keras.Model, fmt: str = 'float32') -> bytes:
  """The `.tflite` bytes of a stripped model, zeros stored sparse.

  Args:
    model: a stripped (unwrapped) Keras model.
    fmt: 'float32' or 'int8' (dynamic-range quantization on top).

  Returns:
    The flatbuffer.

  Raises:
    ValueError: an unknown format, or the converter refused the model (the
      message names the layer and the op it cannot convert).
  """
  if fmt not in FORMATS:
    raise ValueError(f'unknown TFLite format {fmt!r}; one of {FORMATS}')
  fn = export.serving_function(model)
  converter = tf.lite.TFLiteConverter.from_concrete_functions([fn], model)
  converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
  if fmt == 'int8':
    converter.optimizations.insert(0, tf.lite.Optimize.DEFAULT)
  try:
    return converter.convert()
  except Exception as e:  # pylint: disable=broad-except
    # ConverterError is not public API; its message is pages of MLIR.
    what = _explain(e, model)
    if what is None:
      raise
    raise ValueError(f'TFLite cannot convert model {model.name!r}: {what} '
                     '(replace that layer, or set export.tflite=none)'
                     ) from None


class Runner:
  """Runs a `.tflite` flatbuffer on batches of any size.

  XNNPACK (TFLite's default CPU delegate) cannot prepare some layers of a
  file with int8 weights stored sparse (measured here: a Conv2D of
  `fmnist_cnn`); the runner then uses TFLite's builtin kernels, and
  `delegate` says which ran.

  Args:
    data: the flatbuffer.
    num_threads: interpreter threads (None: TFLite's default).
    xnnpack: False runs TFLite's builtin kernels only (no XNNPACK delegate),
      to time the two side by side.
  """

  def __init__(self, data: bytes, num_threads: Optional[int] = None,
               xnnpack: bool = True):
    self._data = data
    self._threads = num_threads
    self.delegate = 'xnnpack' if xnnpack else 'builtin'
    self._make()

  def _make(self):
    kwargs = {}
    if self.delegate == 'builtin':
      kwargs['experimental_op_resolver_type'] = (
          tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    with warnings.catch_warnings():
      # Its successor (ai_edge_litert) is another package; this one still
      # runs the same flatbuffers.
      warnings.filterwarnings('ignore', r'\s*Warning: tf.lite.Interpreter is deprecated')
      self._interpreter = tf.lite.Interpreter(
          model_content=self._data, num_threads=self._threads, **kwargs)
    self._input = self._interpreter.get_input_details()[0]['index']
    self._output = self._interpreter.get_output_details()[0]['index']
    self._shape = None

  def _allocate(self, shape):
    self._interpreter.resize_tensor_input(self._input, shape)
    try:
      self._interpreter.allocate_tensors()
    except RuntimeError:
      if self.delegate != 'xnnpack':
        raise
      self.delegate = 'builtin'
      self._make()
      self._interpreter.resize_tensor_input(self._input, shape)
      self._interpreter.allocate_tensors()
    self._shape = shape

  def __call__(self, images: np.ndarray) -> np.ndarray:
    images = np.asarray(images, np.float32)
    if self._shape != images.shape:
      self._allocate(images.shape)
    self._interpreter.set_tensor(self._input, images)
    self._interpreter.invoke()
    return np.array(self._interpreter.get_tensor(self._output))


def sparse_weights(data: bytes) -> Dict[str, Sequence[int]]:
  """The tensors a flatbuffer stores in the sparse format, with their shapes.

  The converter picks them: it stores a constant sparse when enough of it is
  zero and a kernel can read it through a DENSIFY op.
  """
  runner = Runner(data, xnnpack=False)
  return {d['name']: list(d['shape'])
          for d in runner._interpreter.get_tensor_details()  # pylint: disable=protected-access
          if d.get('sparsity_parameters')}


def check(data: bytes, model: keras.Model, dataset: tf.data.Dataset,
          max_batches: int = 0) -> Dict[str, float]:
  """The file's predictions against the Keras model's on `dataset`.

  Args:
    data: the flatbuffer.
    model: the Keras model it was converted from.
    dataset: batched (images, labels).
    max_batches: batches to read (0: all).

  Returns:
    `{'agreement': share of images whose top-1 classes agree,
      'accuracy': the file's accuracy, 'keras_accuracy': the model's,
      'examples': images compared, 'kernels': 'xnnpack' or 'builtin'}`.
  """
  run = Runner(data)
  agree = right = keras_right = n = 0
  ds = dataset.take(max_batches) if max_batches else dataset
  for images, labels in ds:
    ours = run(images.numpy()).argmax(-1)
    theirs = np.asarray(model(images, training=False)).argmax(-1)
    labels = np.asarray(labels).reshape(-1)
    agree += int(np.sum(ours == theirs))
    right += int(np.sum(ours == labels))
    keras_right += int(np.sum(theirs == labels))
    n += len(labels)
  if not n:
    raise ValueError('the dataset to check the TFLite file on is empty')
  return {'agreement': agree / n, 'accuracy': right / n,
          'keras_accuracy': keras_right / n, 'examples': n,
          'kernels': run.delegate}
