r"""Reward-step throughput of a pruning-wrapped ResNet-50: MirroredStrategy
against a plain `model.fit` of the same wrapped model, with and without mixed
precision and XLA, on synthetic ImageNet-shaped data.

  python benchmarks/gpu_step.py                # on a GPU machine: 224x224
  python benchmarks/gpu_step.py --cpu_tiny     # anywhere: 32x32, a few steps

The wrapped model is what the PuRL environment trains: every prunable layer
wrapped once, each schedule reading its target from a variable (here 0.5).
Writes benchmarks/results/gpu_step.json (or gpu_step_cpu.json) and a table.
"""

import json
import os
import sys
import time

from absl import app
from absl import flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import purl_tf  # pylint: disable=g-import-not-at-top,unused-import
from purl_tf import experiment, models, pruning, train
from purl_tf.compat import keras, tf, tfmot
import numpy as np  # pylint: disable=g-import-not-at-top
import ml_collections  # pylint: disable=g-import-not-at-top

_CPU_TINY = flags.DEFINE_bool('cpu_tiny', False, '32x32 images, few steps, '
                              'fp32 only (mixed precision is GPU-only).')
_IMAGE = flags.DEFINE_integer('image_size', 224, 'Image side.')
_BATCH = flags.DEFINE_integer('batch_per_replica', 64, 'Batch per replica.')
_STEPS = flags.DEFINE_integer('steps', 50, 'Timed steps per configuration.')
_WARMUP = flags.DEFINE_integer('warmup', 10, 'Untimed steps (tracing, autotune).')
_OUT = flags.DEFINE_string('out', os.path.join(REPO, 'benchmarks', 'results'), '')


def measure(strategy_name, mixed, xla, image, batch_per_replica, steps, warmup):
  keras.backend.clear_session()
  keras.mixed_precision.set_global_policy('mixed_float16' if mixed else 'float32')
  strategy = (tf.distribute.MirroredStrategy() if strategy_name == 'mirrored'
              else tf.distribute.get_strategy())
  global_batch = batch_per_replica * strategy.num_replicas_in_sync
  rng = np.random.RandomState(0)
  x = rng.rand(global_batch, image, image, 3).astype(np.float32)
  y = rng.randint(0, 1000, global_batch)
  ds = tf.data.Dataset.from_tensors((x, y)).repeat().prefetch(tf.data.AUTOTUNE)
  with strategy.scope():
    config = ml_collections.ConfigDict({'name': 'resnet50', 'weights': ''})
    dense = models.build(config, (image, image, 3), 1000)
    infos = pruning.prunable_layers(dense)
    targets = {i.name: tf.Variable(0.5, trainable=False) for i in infos}
    wrapped = pruning.apply_sparsity_map(
        dense, {i.name: 0.0 for i in infos},
        lambda name, s: pruning.VariableSparsity(targets[name], frequency=10))
    wrapped.compile(keras.optimizers.SGD(1e-3, momentum=0.9),
                    'sparse_categorical_crossentropy', jit_compile=xla)
  callbacks = [tfmot.sparsity.keras.UpdatePruningStep()]
  wrapped.fit(ds, steps_per_epoch=warmup, epochs=1, verbose=0, callbacks=callbacks)
  start = time.perf_counter()
  wrapped.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=callbacks)
  wall = time.perf_counter() - start
  keras.mixed_precision.set_global_policy('float32')
  return {'strategy': strategy_name, 'mixed_precision': mixed, 'xla': xla,
          'replicas': strategy.num_replicas_in_sync, 'global_batch': global_batch,
          'images_per_s': steps * global_batch / wall, 'wall_s': wall}


def main(argv):
  del argv
  tiny = _CPU_TINY.value
  image = 32 if tiny else _IMAGE.value
  steps = 3 if tiny else _STEPS.value
  warmup = 2 if tiny else _WARMUP.value
  batch = 8 if tiny else _BATCH.value
  gpus = tf.config.list_physical_devices('GPU')
  variants = [(False, False), (False, True)] + ([] if tiny or not gpus else
                                                [(True, False), (True, True)])
  rows = []
  for mixed, xla in variants:
    for name in ('plain', 'mirrored'):
      row = measure(name, mixed, xla, image, batch, steps, warmup)
      print(json.dumps(row), flush=True)
      rows.append(row)
  for mixed, xla in variants:
    plain, mirrored = [r for r in rows if r['mixed_precision'] == mixed and r['xla'] == xla]
    mirrored['ratio_to_plain_fit'] = mirrored['images_per_s'] / plain['images_per_s']
  device = (tf.config.experimental.get_device_details(gpus[0]).get('device_name')
            if gpus else 'CPU only')
  payload = {'device': device, 'gpus': len(gpus), 'image_size': image,
             'batch_per_replica': batch, 'steps': steps, 'warmup': warmup,
             'results': rows, 'versions': experiment.versions()}
  name = 'gpu_step_cpu' if tiny or not gpus else 'gpu_step'
  os.makedirs(_OUT.value, exist_ok=True)
  with open(os.path.join(_OUT.value, f'{name}.json'), 'w') as f:
    json.dump(payload, f, indent=1, sort_keys=True)
  lines = [f'# Reward-step throughput, ResNet-50 {image}x{image}, {device}', '',
           '| mixed precision | XLA | plain fit img/s | MirroredStrategy img/s | ratio |',
           '|---|---|---|---|---|']
  for mixed, xla in variants:
    plain, mirrored = [r for r in rows if r['mixed_precision'] == mixed and r['xla'] == xla]
    lines.append(f'| {mixed} | {xla} | {plain["images_per_s"]:.1f} | '
                 f'{mirrored["images_per_s"]:.1f} | {mirrored["ratio_to_plain_fit"]:.3f} |')
  with open(os.path.join(_OUT.value, f'{name}.md'), 'w') as f:
    f.write('\n'.join(lines) + '\n')
  print('\n'.join(lines))


if __name__ == '__main__':
  app.run(main)
