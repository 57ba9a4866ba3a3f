"""Datasets as `tf.data` pipelines with a train / reward / test split.

The split keeps the test set out of every decision: the search and every
allocation method only ever see `train` (fine-tunes) and `reward` (a small
validation split carved from the *training* data); `test` is read once, for
the final numbers.

Sources:
  * `fashion_mnist`: the four IDX `.gz` files, read locally (Debian's
    `dataset-fashion-mnist` package puts them in
    `/usr/share/datasets/fashion-mnist/`).
  * any other name: a TensorFlow Datasets builder (`tfds.builder`), prepared
    from `tfds_data_dir`; ImageNet is `imagenet2012` with its tar files in
    `manual_dir`.
  * `image_folder`: JPEG/PNG files in `dir`/{train,test}/LABEL/ read through
    `tfds.ImageFolder` (the tests run the ImageNet preprocessing on one).
  * `synthetic_imagenet`: random ImageNet-shaped images, for smoke runs and
    tests of the ImageNet code path on machines without ImageNet.
"""

import dataclasses
import gzip
import os
import struct
from typing import Callable, Optional, Tuple

import numpy as np

from purl_tf.compat import tf

FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist'
_FMNIST_FILES = {
    'train_images': 'train-images-idx3-ubyte.gz',
    'train_labels': 'train-labels-idx1-ubyte.gz',
    'test_images': 't10k-images-idx3-ubyte.gz',
    'test_labels': 't10k-labels-idx1-ubyte.gz',
}
# Per-channel statistics for the 'caffe' normalisation ResNet-50 was trained
# with (BGR order), as in keras.applications.resnet.preprocess_input.
_CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
PREPROCESSORS = ('grey', 'resnet50', 'mobilenet_v2')
# Data settings that change how fast the batches come, never which: what
# identifies a dense net (experiment's cache) or a benchmark cell leaves
# them out (tests/data_test.py checks the batches are the same).
SPEED_ONLY_KEYS = ('autotune',)


class DataError(ValueError):
  """A dataset cannot be found or read; the message names the fix."""


@dataclasses.dataclass
class Splits:
  """Batched pipelines and what a model needs to know about them.

  `search_train` holds the same examples as `train` in an order fixed by the
  seed alone (shuffled once, not per pass): the search caches its first
  batches, and they must not depend on how often `train` was read before
  (a resumed search skips the dense training).

  `fresh_train()` builds the `train` pipeline anew. A reshuffling pipeline
  draws a new order at every pass, so the n-th fine-tune read from one
  `train` sees other batches than the first: the final fine-tunes that
  compare allocations each read a fresh one, and see the same batches.
  """
  train: tf.data.Dataset
  search_train: tf.data.Dataset
  reward: tf.data.Dataset
  test: tf.data.Dataset
  input_shape: Tuple[int, ...]
  num_classes: int
  num_train: int
  num_reward: int
  num_test: int
  batch_size: int
  fresh_train: Optional[Callable[[], tf.data.Dataset]] = None


def read_idx(path: str) -> np.ndarray:
  """Reads one (optionally gzipped) IDX file into a uint8 array.

  Args:
    path: path of an IDX file such as `train-images-idx3-ubyte.gz`.

  Returns:
    The array, shaped as the file's header says.

  Raises:
    DataError: if the file is missing or not an IDX file of unsigned bytes.
  """
  if not os.path.exists(path):
    raise DataError(f'missing data file {path}')
  opener = gzip.open if path.endswith('.gz') else open
  try:
    with opener(path, 'rb') as f:
      data = f.read()
  except (OSError, EOFError) as e:
    raise DataError(f'cannot read {path}: {e}') from e
  if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
    raise DataError(f'{path} is not an IDX file of unsigned bytes')
  ndim = data[3]
  shape = struct.unpack('>' + 'I' * ndim, data[4:4 + 4 * ndim])
  body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
  if body.size != int(np.prod(shape)):
    raise DataError(f'{path} is truncated: header says {shape}, '
                    f'found {body.size} values')
  return body.reshape(shape)


def load_fashion_mnist(data_dir: Optional[str] = None):
  """Returns ((x_train, y_train), (x_test, y_test)) as uint8 numpy arrays.

  Raises:
    DataError: naming the package to install or the flag to set, when the
      directory or one of its four files is missing.
  """
  data_dir = data_dir or FASHION_MNIST_DIR
  fix = ('install it with `apt-get install -y dataset-fashion-mnist` or point '
         '--config.data.dir= at a directory holding the four IDX .gz files')
  if not os.path.isdir(data_dir):
    raise DataError(f'Fashion-MNIST directory {data_dir} does not exist: {fix}')
  missing = [f for f in _FMNIST_FILES.values()
             if not os.path.exists(os.path.join(data_dir, f))]
  if missing:
    raise DataError(f'Fashion-MNIST files missing in {data_dir}: '
                    f'{", ".join(missing)}; {fix}')
  arrays = {k: read_idx(os.path.join(data_dir, f))
            for k, f in _FMNIST_FILES.items()}
  return ((arrays['train_images'], arrays['train_labels']),
          (arrays['test_images'], arrays['test_labels']))


def preprocess_fn(kind: str, image_size: int, training: bool, seed: int = 0):
  """Returns `f(image, label) -> (image, label)` for a model family.

  Args:
    kind: 'grey' (28x28x1 scaled to [0, 1]); 'resnet50' or 'mobilenet_v2'
      (ImageNet: random resized crop + flip when training, resize + central
      crop otherwise, then the family's normalisation).
    image_size: output side for the ImageNet families.
    training: whether to augment.
    seed: seeds the augmentation (op determinism needs explicit seeds).
  """
  if kind not in PREPROCESSORS:
    raise ValueError(f'unknown preprocessing {kind!r}; one of {PREPROCESSORS}')

  def grey(image, label):
    image = tf.cast(image, tf.float32) / 255.0
    if image.shape.rank == 2:
      image = image[..., None]
    return image, label

  def imagenet(image, label):
    image = tf.cast(image, tf.float32)
    if image.shape.rank == 2 or image.shape[-1] == 1:
      image = tf.image.grayscale_to_rgb(
          image[..., None] if image.shape.rank == 2 else image)
    if training:
      # Inception-style random resized crop, as used to train both families.
      begin, size, _ = tf.image.sample_distorted_bounding_box(
          tf.shape(image), tf.zeros([0, 0, 4], tf.float32),
          min_object_covered=0.1, aspect_ratio_range=(3 / 4, 4 / 3),
          area_range=(0.08, 1.0), max_attempts=10,
          use_image_if_no_bounding_boxes=True, seed=seed + 1)
      image = tf.slice(image, begin, size)
      image = tf.image.resize(image, (image_size, image_size))
      image = tf.image.random_flip_left_right(image, seed=seed + 2)
    else:
      # Resize so the crop keeps 87.5% of the shorter side, then crop centrally.
      shape = tf.cast(tf.shape(image)[:2], tf.float32)
      scale = (image_size / 0.875) / tf.reduce_min(shape)
      new = tf.cast(tf.round(shape * scale), tf.int32)
      image = tf.image.resize(image, new)
      image = tf.image.resize_with_crop_or_pad(image, image_size, image_size)
    image = tf.ensure_shape(image, [image_size, image_size, 3])
    if kind == 'resnet50':
      image = image[..., ::-1] - tf.constant(_CAFFE_BGR_MEAN)
    else:
      image = image / 127.5 - 1.0
    return image, label

  return grey if kind == 'grey' else imagenet


def _pipeline(ds, kind, image_size, batch_size, training, seed,
              cache=False, deterministic=True, reshuffle=True, autotune=False):
  options = tf.data.Options()
  options.deterministic = deterministic
  # tf.data's autotuning model runs in a thread that an iterator's
  # destructor joins, and on TensorFlow 2.21 the join waits out the
  # thread's sleep, which grows to 60 s: Keras drops an iterator per epoch
  # and per evaluation, and on 2 CPU cores 40 of a 91 s final fine-tune
  # were this wait, idle (config data.autotune). Off, AUTOTUNE parallelism
  # is the core count and prefetch grows its own buffer; the batches are
  # the same (tests/data_test.py).
  options.autotune.enabled = bool(autotune)
  ds = ds.with_options(options)
  if training:
    ds = ds.shuffle(10_000, seed=seed, reshuffle_each_iteration=reshuffle)
  ds = ds.map(preprocess_fn(kind, image_size, training, seed),
              num_parallel_calls=tf.data.AUTOTUNE)
  ds = ds.batch(batch_size, drop_remainder=training)
  if cache:
    # Reward splits are small and read every step of the search.
    ds = ds.cache()
  return ds.prefetch(tf.data.AUTOTUNE)


def _from_arrays(x_train, y_train, x_test, y_test, config, seed):
  reward_size = int(config.reward_size)
  if reward_size <= 0 or reward_size >= len(x_train):
    raise DataError(f'reward split of {reward_size} examples is empty or eats '
                    f'the whole training set of {len(x_train)}; set '
                    '--config.data.reward_size= between 1 and '
                    f'{len(x_train) - 1}')
  # A fixed permutation decides which training examples form the reward split.
  order = np.random.RandomState(seed).permutation(len(x_train))
  reward_idx, train_idx = order[:reward_size], order[reward_size:]
  if config.get('train_size'):
    train_idx = train_idx[:int(config.train_size)]
  if config.get('test_size'):
    x_test, y_test = x_test[:int(config.test_size)], y_test[:int(config.test_size)]
  y_train = y_train.astype(np.int64)
  y_test = y_test.astype(np.int64)
  mk = tf.data.Dataset.from_tensor_slices
  return (mk((x_train[train_idx], y_train[train_idx])),
          mk((x_train[reward_idx], y_train[reward_idx])),
          mk((x_test, y_test)), len(train_idx), len(reward_idx), len(x_test))


def _synthetic_arrays(config, seed):
  """Random ImageNet-shaped uint8 images with learnable (colour) labels."""
  rng = np.random.RandomState(seed)
  # train_size (and test_size) images are generated, as many as a real
  # source would hold; the reward split is carved from training as usual.
  n_train = (int(config.get('train_size', 0)) or 512 - int(
      config.reward_size)) + int(config.reward_size)
  n_test = int(config.get('test_size', 0)) or 128
  # Larger than the net's input, so that the resize path runs as on ImageNet.
  side = int(config.get('image_size', 224)) * 5 // 4
  classes = int(config.get('num_classes', 10))

  def make(n):
    y = rng.randint(0, classes, size=n)
    base = (y[:, None, None, None] * (255 // max(classes - 1, 1))).astype(np.float32)
    x = base + rng.normal(0, 30, size=(n, side, side, 3))
    return np.clip(x, 0, 255).astype(np.uint8), y
  (xt, yt), (xe, ye) = make(n_train), make(n_test)
  return xt, yt, xe, ye, classes


def _image_folder_splits(config, seed):
  """`tfds.ImageFolder` at `config.dir`: DIR/{train,test|validation}/LABEL/*.jpg.

  ImageFolder has no sub-split API, so the reward split is every k-th
  training image (k = train size / reward size), which keeps the classes
  balanced when files are listed class by class.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  root = config.get('dir')
  if not root or not os.path.isdir(os.path.join(root, 'train')):
    raise DataError(f'image folder {root!r} has no train/ directory; lay it '
                    'out as DIR/train/LABEL/*.jpg and DIR/test/LABEL/*.jpg and '
                    'set --config.data.dir=DIR')
  builder = tfds.ImageFolder(root)
  splits = builder.info.splits
  test_split = 'test' if 'test' in splits else 'validation'
  if test_split not in splits:
    raise DataError(f'image folder {root} needs a test/ or validation/ directory')
  num_train = splits['train'].num_examples
  reward_size = int(config.reward_size)
  if reward_size <= 0 or reward_size >= num_train:
    raise DataError(f'reward split of {reward_size} examples is empty or eats '
                    f'the whole training set of {num_train}')
  every = max(2, num_train // reward_size)
  full = builder.as_dataset(split='train', as_supervised=True,
                            shuffle_files=False).enumerate()
  is_reward = lambda i, _: tf.logical_and(i % every == 0, i // every < reward_size)
  reward = full.filter(is_reward).map(lambda i, ex: ex)
  train = full.filter(lambda i, ex: tf.logical_not(is_reward(i, ex))).map(
      lambda i, ex: ex)
  test = builder.as_dataset(split=test_split, as_supervised=True,
                            shuffle_files=False)
  n_reward = min(reward_size, -(-num_train // every))
  return (train, reward, test, num_train - n_reward, n_reward,
          splits[test_split].num_examples, builder.info.features['label'].num_classes)


def _tfds_splits(config, seed):
  """The train/reward/test split of a TensorFlow Datasets builder."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  name = config.name
  try:
    builder = tfds.builder(name, data_dir=config.get('tfds_data_dir') or None)
  except Exception as e:  # tfds raises its own DatasetNotFoundError.
    raise DataError(f'TensorFlow Datasets does not know dataset {name!r} '
                    f'({type(e).__name__}); use a tfds name such as '
                    '`imagenet2012` or `fashion_mnist`, or `--config.data.name='
                    'fashion_mnist` for the local IDX files') from e
  try:
    download_config = tfds.download.DownloadConfig(
        manual_dir=config.get('manual_dir') or None)
    builder.download_and_prepare(download_config=download_config)
  except Exception as e:
    raise DataError(
        f'cannot prepare tfds dataset {name!r} in '
        f'{config.get("tfds_data_dir") or "the default tfds data_dir"}: {e}. '
        'Prepare it with network access, or for ImageNet put the tar files '
        'in --config.data.manual_dir=') from e
  info = builder.info
  test_split = 'test' if 'test' in info.splits else 'validation'
  reward_size = int(config.reward_size)
  num_train = info.splits['train'].num_examples
  if reward_size <= 0 or reward_size >= num_train:
    raise DataError(f'reward split of {reward_size} examples is empty or eats '
                    f'the whole training set of {num_train}')
  read_config = tfds.ReadConfig(shuffle_seed=seed)
  train, reward, test = builder.as_dataset(
      split=[f'train[:-{reward_size}]', f'train[-{reward_size}:]', test_split],
      as_supervised=True, shuffle_files=True, read_config=read_config)
  num_test = info.splits[test_split].num_examples
  if config.get('train_size'):
    train = train.take(int(config.train_size))
  if config.get('test_size'):
    test = test.take(int(config.test_size))
    num_test = min(num_test, int(config.test_size))
  n_train = min(num_train - reward_size, int(config.get('train_size') or 1 << 62))
  classes = info.features['label'].num_classes
  return train, reward, test, n_train, reward_size, num_test, classes


def get_splits(config, seed: int = 0) -> Splits:
  """Builds the three batched pipelines that a data config names.

  Args:
    config: the `data` part of a purl_tf config (name, dir, reward_size,
      batch_size, preprocess, image_size, optional train_size/test_size, and
      tfds_data_dir/manual_dir for tfds sources).
    seed: seeds the reward carve-out and the training shuffle.

  Returns:
    A `Splits`.

  Raises:
    DataError: missing files, unknown dataset, or an empty reward split.
  """
  kind = config.get('preprocess', 'grey')
  image_size = int(config.get('image_size', 224))
  batch = int(config.batch_size)
  if batch <= 0:
    raise DataError(f'batch_size must be positive, got {batch}')
  if config.name == 'fashion_mnist':
    (xt, yt), (xe, ye) = load_fashion_mnist(config.get('dir'))
    train, reward, test, nt, nr, ne = _from_arrays(xt, yt, xe, ye, config, seed)
    classes = 10
  elif config.name == 'synthetic_imagenet':
    xt, yt, xe, ye, classes = _synthetic_arrays(config, seed)
    train, reward, test, nt, nr, ne = _from_arrays(xt, yt, xe, ye, config, seed)
  elif config.name == 'image_folder':
    train, reward, test, nt, nr, ne, classes = _image_folder_splits(config, seed)
  else:
    train, reward, test, nt, nr, ne, classes = _tfds_splits(config, seed)
  autotune = bool(config.get('autotune', False))
  search_train = _pipeline(train, kind, image_size, batch, True, seed,
                           reshuffle=False, autotune=autotune)
  raw_train = train

  def fresh_train():
    return _pipeline(raw_train, kind, image_size, batch, True, seed,
                     autotune=autotune)
  train = fresh_train()
  reward = _pipeline(reward, kind, image_size, batch, False, seed, cache=True,
                     autotune=autotune)
  test = _pipeline(test, kind, image_size, batch, False, seed,
                   autotune=autotune)
  shape = tuple(train.element_spec[0].shape[1:])
  return Splits(train=train, search_train=search_train, reward=reward, test=test, input_shape=shape,
                num_classes=classes, num_train=nt, num_reward=nr, num_test=ne,
                batch_size=batch, fresh_train=fresh_train)
