"""Tests for purl_tf.experiment: every allocation gets the same final fine-tune."""

import errno
import os
from unittest import mock

import pytest

from purl_tf import allocation, cli_errors, config_defaults, experiment
from purl_tf import io_utils
from purl_tf.compat import tf


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
    # What a search leaves behind: it reseeds TensorFlow at every episode.
    tf.random.set_seed(100 + k)
    digests.append(experiment.finish(ctx, sparsity, target=0.8,
                                     method='uniform', verbose=0)
                   ['weights_sha256'])
    # Another reader of the training data between the two fine-tunes.
    for _ in ctx.splits.train.take(3):
      pass
  assert digests[0] == digests[1]


def testDiskFullWhileStarting_LeavesNothingThatBlocksTheNextRun(tmp_path):
  ctx = _ctx(tmp_path / 'dense')
  ctx.workdir = str(tmp_path / 'run')

  def full(*_):
    raise OSError(errno.ENOSPC, 'No space left on device')
  with mock.patch.object(io_utils, 'save_weights_atomic', full):
    with pytest.raises(OSError):
      experiment.init_workdir(ctx, kind='prune')
  assert not os.path.exists(os.path.join(ctx.workdir, 'config.json'))
  # The next run on that workdir starts as if it were empty.
  experiment.check_workdir(ctx.workdir, ctx.config, kind='prune')
  experiment.init_workdir(ctx, kind='prune')
  assert os.path.exists(os.path.join(ctx.workdir, 'config.json'))


@pytest.mark.parametrize('error', [
    OSError(errno.ENOSPC, 'No space left on device', '/w/dense.weights.h5'),
    # h5py's form: no errno, one long line.
    OSError('Unable to synchronously create file (file write failed: time = '
            'Wed Nov 25, filename = /w/x.h5, file descriptor = 7, errno = 28, '
            "error message = 'No space left on device', buf = 0x55, total "
            'write size = 2048, bytes this sub-write = 2048, offset = 0)'),
])
def testDiskFull_OneLineThatSaysSoAndHowToGoOn(error, capsys):
  with pytest.raises(SystemExit) as info:
    with cli_errors.friendly_errors('purl-search'):
      raise error
  assert info.value.code == cli_errors.EXIT_USER_ERROR
  lines = capsys.readouterr().err.splitlines()
  assert len(lines) == 1 and len(lines[0]) < 200, lines
  assert lines[0].startswith('purl-search: error: no space left on device')
  assert '--resume' in lines[0]


def testReadOnlyWorkdir_IsRefusedBeforeAnyWork(tmp_path):
  config = config_defaults.base_config()
  target = str(tmp_path / 'ro' / 'run')
  (tmp_path / 'ro').mkdir()
  real = os.access

  def access(path, mode):  # as a non-root user sees a read-only directory
    if os.path.abspath(path) == str(tmp_path / 'ro') and mode & os.W_OK:
      return False
    return real(path, mode)
  with mock.patch.object(os, 'access', access):
    with pytest.raises(experiment.WorkdirError, match='not writable'):
      experiment.check_workdir(target, config, kind='prune')
  assert not os.path.exists(target)


def testResume_LoadsTrainedDenseWeights_WithoutOptimizerWarning(tmp_path,
                                                                caplog):
  ctx = _ctx(tmp_path)  # trained, so its optimizer holds state
  io_utils.save_weights_atomic(
      ctx.dense, os.path.join(tmp_path, experiment.DENSE_WEIGHTS))
  caplog.set_level('WARNING')
  resumed = experiment.prepare(ctx.config, str(tmp_path), verbose=0,
                               resume=True)
  assert resumed.dense_train_s == 0.0  # loaded, not retrained
  for a, b in zip(ctx.dense.get_weights(), resumed.dense.get_weights()):
    assert (a == b).all()
  assert not [r for r in caplog.records
              if 'Skipping variable loading' in r.getMessage()]


def testDenseCache_KeyLeavesOutDataAutotune_OtherDataSettingsCount():
  # Speed-only: a dense net cached before data.autotune existed (or with it
  # on) is found, while a setting that changes the batches is a new net.
  config = config_defaults.base_config()
  config.train.cache_dir = '/cache'
  off = experiment._dense_cache_path(config)  # pylint: disable=protected-access
  config.data.autotune = True
  assert experiment._dense_cache_path(config) == off  # pylint: disable=protected-access
  del config.data['autotune']
  assert experiment._dense_cache_path(config) == off  # pylint: disable=protected-access
  config.data.batch_size = 64
  assert experiment._dense_cache_path(config) != off  # pylint: disable=protected-access
