"""Tests for purl_tf.progress: periodic lines with rate and time left."""

import io

import numpy as np
import pytest

from purl_tf import progress
from purl_tf.compat import keras, tf


class FakeClock:

  def __init__(self):
    self.now = 100.0

  def __call__(self):
    return self.now


@pytest.mark.parametrize('seconds,text', [
    (9, '9s'), (75, '1m15s'), (3700, '1h01m'), (-3, '0s')])
def testFormatDuration_ReadableUnits(seconds, text):
  assert progress.format_duration(seconds) == text


def testProgress_PrintsOnlyAfterTheInterval_WithRateAndTimeLeft():
  clock, out = FakeClock(), io.StringIO()
  p = progress.Progress('scan', 100, 'evaluations', every_s=30, out=out,
                        clock=clock)
  clock.now += 10
  assert p.update(5) is None
  clock.now += 30  # 40 s, 20 done: 0.5/s, 80 left -> 160 s
  assert p.update(20) == '  scan: 20/100 evaluations (0.5/s, ~2m40s left)'
  clock.now += 5
  assert p.update(22) is None  # within the next interval
  assert out.getvalue() == '  scan: 20/100 evaluations (0.5/s, ~2m40s left)\n'


@pytest.mark.parametrize('total,every_s', [(0, 1.0), (5, 0.0)])
def testProgress_BadArguments_RaiseValueError(total, every_s):
  with pytest.raises(ValueError):
    progress.Progress('x', total, every_s=every_s)


def testKerasProgress_PrintsStepsOfEachEpochDuringFit():
  clock, out = FakeClock(), io.StringIO()

  class Tick(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
      clock.now += 1.0  # every batch takes a fake second

  model = keras.Sequential([keras.layers.Dense(2, input_shape=(3,))])
  model.compile('sgd', 'mse')
  ds = tf.data.Dataset.from_tensor_slices(
      (np.zeros((8, 3), 'float32'), np.zeros((8, 2), 'float32'))).batch(2)
  model.fit(ds, epochs=2, verbose=0, callbacks=[
      Tick(), progress.KerasProgress(every_s=2.0, out=out, clock=clock)])
  lines = out.getvalue().splitlines()
  assert lines == ['  epoch 1/2: 2/4 steps (1/s, ~2s left)',
                   '  epoch 1/2: 4/4 steps (1/s, ~0s left)',
                   '  epoch 2/2: 2/4 steps (1/s, ~2s left)',
                   '  epoch 2/2: 4/4 steps (1/s, ~0s left)']
