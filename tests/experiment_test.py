"""Tests for purl_tf.experiment: every allocation gets the same final fine-tune."""

from purl_tf import allocation, config_defaults, experiment
from purl_tf.compat import keras


def _ctx(tmp_path):
  config = config_defaults.base_config()
  config.data.update(train_size=512, reward_size=256, test_size=256,
                     batch_size=32)
  config.train.epochs = 1
  config.finetune.epochs = 1
  return experiment.prepare(config, str(tmp_path), verbose=0)


def testFinish_SameAllocationTwice_SameWeightsWhateverRanBefore(tmp_path):
  ctx = _ctx(tmp_path)
  sparsity = allocation.uniform(ctx.dense, 0.8)
  digests = []
  for k in range(2):
    ctx.workdir = str(tmp_path / f'run{k}')
    keras.utils.set_random_seed(0)
    digests.append(experiment.finish(ctx, sparsity, target=0.8,
                                     method='uniform', verbose=0)
                   ['weights_sha256'])
    # Another reader of the training data between the two fine-tunes.
    for _ in ctx.splits.train.take(3):
      pass
  assert digests[0] == digests[1]
