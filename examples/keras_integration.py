r"""purl_tf inside a plain Keras training script.

The first half is an ordinary Keras script (data, model, fit); the second
half adds purl_tf: search a per-layer sparsity policy, prune inside the
user's own `fit`, strip, and export for TF Serving.

  python examples/keras_integration.py --export_dir=/tmp/serving
  python examples/keras_integration.py --quick --export_dir=/tmp/serving
"""

import os

from absl import app
from absl import flags

import purl_tf  # Before tensorflow: selects Keras 2, which tfmot needs.
from purl_tf import data as purl_data  # only to read Debian's IDX files
import tensorflow as tf
import tf_keras as keras

_EXPORT_DIR = flags.DEFINE_string('export_dir', '/tmp/purl_serving',
                                  'TF Serving model base directory parent.')
_QUICK = flags.DEFINE_bool('quick', False, 'A one-minute run on 2 CPU cores.')
_SPARSITY = flags.DEFINE_float('sparsity', 0.9, 'Global target sparsity.',
                               lower_bound=0.0, upper_bound=0.99)


def main(argv):
  del argv
  keras.utils.set_random_seed(0)
  quick = _QUICK.value

  # ---- the user's own training script -------------------------------------
  (x_train, y_train), (x_test, y_test) = purl_data.load_fashion_mnist()
  x_train = x_train[..., None].astype('float32') / 255.0
  x_test = x_test[..., None].astype('float32') / 255.0
  n = 6000 if quick else len(x_train)
  # Hold a validation split out of the training data for the search's rewards.
  x_val, y_val = x_train[n - 1000:n], y_train[n - 1000:n]
  x_fit, y_fit = x_train[:n - 1000], y_train[:n - 1000]
  train_ds = tf.data.Dataset.from_tensor_slices((x_fit, y_fit)).shuffle(
      10000, seed=0).batch(128)
  val_ds = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(256).cache()
  test_ds = tf.data.Dataset.from_tensor_slices((x_test, y_test)).batch(256)

  model = keras.Sequential([
      keras.Input((28, 28, 1)),
      keras.layers.Conv2D(32, 3, activation='relu'),
      keras.layers.MaxPooling2D(),
      keras.layers.Conv2D(64, 3, activation='relu'),
      keras.layers.MaxPooling2D(),
      keras.layers.Flatten(),
      keras.layers.Dense(128, activation='relu'),
      keras.layers.Dense(10, activation='softmax'),
  ])
  model.compile('adam', 'sparse_categorical_crossentropy', metrics=['accuracy'])
  model.fit(train_ds, epochs=1 if quick else 3, verbose=2)
  print('dense test accuracy', model.evaluate(test_ds, verbose=0)[1])

  # ---- purl_tf ---------------------------------------------------------------
  config = purl_tf.default_config()
  if quick:
    config.search.episodes = 4
    config.search.finetune_steps = 5
    config.search.subset_batches = 10
    config.agent.warmup_episodes = 2
    config.agent.train_iterations = 5
    config.agent.batch_size = 4
    config.select.short_steps = 15  # the default short fine-tune took 60 s
  policy = purl_tf.search(model, train_ds, val_ds, config,
                          target_sparsity=_SPARSITY.value)
  print('policy', policy.sparsity)

  epochs = 1 if quick else 2
  steps = epochs * len(train_ds)
  pruned = purl_tf.apply(model, policy, schedule=purl_tf.polynomial_schedule(
      end_step=steps // 2, frequency=10))
  pruned.compile('adam', 'sparse_categorical_crossentropy', metrics=['accuracy'])
  pruned.fit(train_ds, epochs=epochs, verbose=2,
             callbacks=purl_tf.callbacks())

  final = purl_tf.strip(pruned)
  # Nets with BatchNormalization need their statistics re-estimated after
  # pruning; this CNN has none, so it returns 0 (batches used) at no cost.
  purl_tf.recalibrate_batchnorm(final, train_ds, batches=50)
  final.compile('adam', 'sparse_categorical_crossentropy', metrics=['accuracy'])
  report = purl_tf.sparsity_report(final)
  print('pruned test accuracy', final.evaluate(test_ds, verbose=0)[1])
  print('global sparsity', round(report['global'], 4))
  path = purl_tf.export_for_serving(final, _EXPORT_DIR.value, 'fmnist_keras')
  print('exported to', os.path.abspath(path))


if __name__ == '__main__':
  app.run(main)
