"""tf.distribute on CPU: MirroredStrategy over two logical CPU devices.

Three SGD steps re-mask every step (frequency 1), so the masks are computed
from weights that each strategy updated itself.

Logical devices must be set before TensorFlow's runtime starts, so each check
runs in a fresh subprocess.
"""

import json
import os
import subprocess
import sys
import textwrap

from tests.conftest import REPO, subprocess_env

MASKS_SCRIPT = textwrap.dedent('''
    import json, sys
    import numpy as np
    import purl_tf
    from purl_tf import models, pruning, train
    from purl_tf.compat import keras, tf
    import ml_collections

    strategy_cfg = ml_collections.ConfigDict({'name': 'mirrored', 'logical_cpus': 2})
    mirrored = train.get_strategy(strategy_cfg)
    assert mirrored.num_replicas_in_sync == 2, mirrored.num_replicas_in_sync
    keras.utils.set_random_seed(0)
    dense = models.fmnist_cnn()
    rng = np.random.RandomState(0)
    x = rng.rand(96, 28, 28, 1).astype('float32')
    y = rng.randint(0, 10, 96)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    targets = {'conv1': 0.3, 'conv2': 0.6, 'fc1': 0.9, 'fc2': 0.5}
    out = {}
    for name, strategy in (('default', tf.distribute.get_strategy()),
                           ('mirrored', mirrored)):
      with strategy.scope():
        wrapped = pruning.apply_sparsity_map(
            dense, targets, pruning.constant_schedule(frequency=1))
        train.compile_model(wrapped, 1e-3, 'sgd')
      train.fine_tune(wrapped, ds, epochs=1)
      masks = {n: w.pruning_vars[0][1].numpy().tolist()
               for n, w in pruning.wrappers(wrapped).items()}
      with strategy.scope():
        report = pruning.sparsity_report(pruning.strip(wrapped))
      out[name] = {'masks': masks, 'report': report}
    print('RESULT' + json.dumps(out))
''')

def _run(code, *args, timeout=600):
  result = subprocess.run([sys.executable, '-c', code, *args], capture_output=True,
                          text=True, env=subprocess_env(), cwd=REPO,
                          timeout=timeout)
  assert result.returncode == 0, result.stderr[-3000:]
  return result


def testMirroredOnTwoLogicalCpus_SameMasksAndSparsityAsDefault():
  result = _run(MASKS_SCRIPT)
  line = next(l for l in result.stdout.splitlines() if l.startswith('RESULT'))
  out = json.loads(line[len('RESULT'):])
  assert out['mirrored']['masks'] == out['default']['masks']
  assert out['mirrored']['report'] == out['default']['report']
  assert abs(out['mirrored']['report']['layers']['fc1'] - 0.9) < 1e-3


def testSmokeSearch_RunsUnderMirroredStrategy(tmp_path):
  workdir = tmp_path / 'search'
  cmd = [os.path.join(os.path.dirname(sys.executable), 'purl-search')]
  if not os.path.exists(cmd[0]):
    cmd = [sys.executable, os.path.join(REPO, 'tools', 'search.py')]
  result = subprocess.run(
      cmd + [f'--config={os.path.join(REPO, "configs", "fmnist_cnn.py")}:smoke',
             f'--workdir={workdir}', '--config.strategy.name=mirrored',
             '--config.strategy.logical_cpus=2', '--config.search.episodes=3',
             # One demonstration, then the agent (a learning and a greedy
             # episode); half the smoke data: each step is slower mirrored.
             '--config.search.references=lamp', '--config.data.train_size=3000'],
      capture_output=True, text=True, env=subprocess_env(), cwd=REPO, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  # Every evaluation stops at the data's end: no replica's all-reduce is
  # cancelled, so no `Aborting RingReduce with CANCELLED` error lines.
  assert 'E0000' not in result.stderr, result.stderr[-3000:]
  with open(workdir / 'summary.json') as f:
    summary = json.load(f)
  assert abs(summary['reached_global_sparsity'] - 0.9) <= 0.005


def testScaleBatchWithReplicas_GlobalBatchAndLearningRateGrow():
  code = textwrap.dedent('''
      import purl_tf
      from purl_tf import config_defaults, experiment
      config = config_defaults.load(CONFIG)
      config.strategy.name = 'mirrored'
      config.strategy.logical_cpus = 2
      config.strategy.scale_batch_with_replicas = True
      config.data.batch_size = 32
      config.train.epochs = 0
      ctx = experiment.prepare(config, None, verbose=0)
      x, _ = next(iter(ctx.splits.train))
      print('RESULT', ctx.strategy.num_replicas_in_sync, x.shape[0], ctx.lr_scale,
            float(ctx.dense.optimizer.learning_rate.numpy()))
  ''').replace('CONFIG', repr(os.path.join(REPO, 'configs', 'fmnist_cnn.py') + ':smoke'))
  line = next(l for l in _run(code).stdout.splitlines() if l.startswith('RESULT'))
  replicas, batch, scale, lr = line.split()[1:]
  assert (int(replicas), int(batch), float(scale)) == (2, 64, 2.0)
  assert abs(float(lr) - 2e-3) < 1e-9
