"""A registry of the networks purl_tf prunes, by name.

  fmnist_cnn     Conv32-3x3 > MaxPool > Conv64-3x3 > MaxPool > Flatten >
                 Dense128 > Dense10: the benchmark CNN (4 prunable layers).
  fmnist_resnet  a CIFAR-style residual net for 28x28 input: 3 stages of 2
                 basic blocks (16/32/64 channels): 16 prunable layers.
  resnet50       keras.applications.ResNet50.
  mobilenet_v2   keras.applications.MobileNetV2 (17 DepthwiseConv2D layers).
  file           a user's model from a SavedModel, `.keras` or `.h5` path.

Every builder returns an uncompiled functional `keras.Model`.
"""

import os
from typing import Callable, Dict, Optional, Sequence

from purl_tf.compat import keras

_REGISTRY: Dict[str, Callable[..., keras.Model]] = {}


def register(name: str):
  """Decorator adding a builder `f(input_shape, num_classes, config)`."""
  def wrap(fn):
    _REGISTRY[name] = fn
    return fn
  return wrap


def names() -> Sequence[str]:
  return sorted(_REGISTRY)


@register('fmnist_cnn')
def fmnist_cnn(input_shape=(28, 28, 1), num_classes=10, config=None):
  del config
  inputs = keras.Input(shape=input_shape, name='image')
  x = keras.layers.Conv2D(32, 3, activation='relu', name='conv1')(inputs)
  x = keras.layers.MaxPooling2D(name='pool1')(x)
  x = keras.layers.Conv2D(64, 3, activation='relu', name='conv2')(x)
  x = keras.layers.MaxPooling2D(name='pool2')(x)
  x = keras.layers.Flatten(name='flatten')(x)
  x = keras.layers.Dense(128, activation='relu', name='fc1')(x)
  outputs = keras.layers.Dense(num_classes, activation='softmax', name='fc2')(x)
  return keras.Model(inputs, outputs, name='fmnist_cnn')


def _basic_block(x, filters, stride, name):
  shortcut = x
  y = keras.layers.Conv2D(filters, 3, strides=stride, padding='same',
                          use_bias=False, name=f'{name}_conv1')(x)
  y = keras.layers.BatchNormalization(name=f'{name}_bn1')(y)
  y = keras.layers.ReLU(name=f'{name}_relu1')(y)
  y = keras.layers.Conv2D(filters, 3, padding='same', use_bias=False,
                          name=f'{name}_conv2')(y)
  y = keras.layers.BatchNormalization(name=f'{name}_bn2')(y)
  if stride != 1 or shortcut.shape[-1] != filters:
    shortcut = keras.layers.Conv2D(filters, 1, strides=stride, use_bias=False,
                                   name=f'{name}_proj')(shortcut)
    shortcut = keras.layers.BatchNormalization(name=f'{name}_proj_bn')(shortcut)
  y = keras.layers.Add(name=f'{name}_add')([y, shortcut])
  return keras.layers.ReLU(name=f'{name}_out')(y)


@register('fmnist_resnet')
def fmnist_resnet(input_shape=(28, 28, 1), num_classes=10, config=None):
  del config
  inputs = keras.Input(shape=input_shape, name='image')
  x = keras.layers.Conv2D(16, 3, padding='same', use_bias=False,
                          name='stem_conv')(inputs)
  x = keras.layers.BatchNormalization(name='stem_bn')(x)
  x = keras.layers.ReLU(name='stem_relu')(x)
  for stage, filters in enumerate((16, 32, 64)):
    for block in range(2):
      stride = 2 if stage > 0 and block == 0 else 1
      x = _basic_block(x, filters, stride, f's{stage + 1}b{block + 1}')
  x = keras.layers.GlobalAveragePooling2D(name='gap')(x)
  outputs = keras.layers.Dense(num_classes, activation='softmax', name='fc')(x)
  return keras.Model(inputs, outputs, name='fmnist_resnet')


def _application_weights(config):
  # Keras applications download 'imagenet' themselves; a file is loaded by
  # `build` after the net is built, as for every other model.
  weights = config.get('weights') if config is not None else None
  return 'imagenet' if weights == 'imagenet' else None


def _load_weights_file(model, config):
  path = config.get('weights') if config is not None else None
  if path and path != 'imagenet':
    if not os.path.exists(path):
      raise ValueError(f'weights file {path} does not exist (model.weights)')
    model.load_weights(path)
  return model


@register('resnet50')
def resnet50(input_shape=(224, 224, 3), num_classes=1000, config=None):
  return keras.applications.ResNet50(
      weights=_application_weights(config), input_shape=tuple(input_shape),
      classes=num_classes)


@register('mobilenet_v2')
def mobilenet_v2(input_shape=(224, 224, 3), num_classes=1000, config=None):
  alpha = float(config.get('alpha', 1.0)) if config is not None else 1.0
  return keras.applications.MobileNetV2(
      weights=_application_weights(config), input_shape=tuple(input_shape),
      classes=num_classes, alpha=alpha)


@register('file')
def from_file(input_shape=None, num_classes=None, config=None):
  del input_shape, num_classes
  path = config.get('path') if config is not None else None
  if not path or not os.path.exists(path):
    raise ValueError(f'model file {path!r} does not exist; set '
                     '--config.model.path= to a SavedModel directory, '
                     '.keras or .h5 file')
  try:
    return keras.models.load_model(path, compile=False)
  except Exception as e:
    raise ValueError(f'cannot load a Keras model from {path}: {e}') from e


def build(config, input_shape, num_classes) -> keras.Model:
  """Builds the model a `model` config names.

  Args:
    config: the `model` part of a purl_tf config (`name`, and per builder
      `weights`, `path`, `alpha`).
    input_shape: the image shape the data pipeline yields.
    num_classes: number of output classes.

  Returns:
    An uncompiled Keras model whose input matches `input_shape`.

  Raises:
    ValueError: unknown name, or a model whose input shape does not match.
  """
  name = config.name
  if name not in _REGISTRY:
    raise ValueError(f'unknown model {name!r}; one of {", ".join(names())}')
  model = _REGISTRY[name](tuple(input_shape), int(num_classes), config)
  check_input_shape(model, input_shape)
  return _load_weights_file(model, config)


def check_input_shape(model: keras.Model, input_shape,
                      num_classes: Optional[int] = None):
  """Raises ValueError when the data's images do not fit the model."""
  expected = tuple(model.input_shape[1:])
  got = tuple(input_shape)
  if len(expected) != len(got) or any(
      e is not None and e != g for e, g in zip(expected, got)):
    raise ValueError(f'the data yields images of shape {got} but model '
                     f'{model.name!r} takes {expected}; set '
                     '--config.data.image_size= or choose a matching model')
  if num_classes is not None and model.output_shape[-1] != num_classes:
    raise ValueError(f'model {model.name!r} has {model.output_shape[-1]} '
                     f'outputs but the data has {num_classes} classes')
