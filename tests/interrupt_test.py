"""A Ctrl-C whose KeyboardInterrupt is swallowed is still honoured."""

import os
import signal

import pytest

from purl_tf import interrupt
from purl_tf import train
from purl_tf.compat import keras, tf


@pytest.fixture
def installed():
  previous = signal.getsignal(signal.SIGINT)
  interrupt.install()
  yield
  signal.signal(signal.SIGINT, previous)
  interrupt._pending = False  # pylint: disable=protected-access


def _swallowed_sigint():
  """SIGINT delivered where a library drops the exception, as TensorFlow's
  C++ callbacks can."""
  try:
    os.kill(os.getpid(), signal.SIGINT)
  except KeyboardInterrupt:
    pass


def testNothingArrived_CheckIsANoOp(installed):
  interrupt.check()
  assert not interrupt.pending()


def testSwallowedInterrupt_CheckRaisesItAgain(installed):
  _swallowed_sigint()
  assert interrupt.pending()
  with pytest.raises(KeyboardInterrupt):
    interrupt.check()


def testWithoutInstall_SigintKeepsTheUsersHandlerAndCheckIgnoresIt():
  calls = []
  previous = signal.signal(signal.SIGINT, lambda *a: calls.append(a))
  try:
    os.kill(os.getpid(), signal.SIGINT)
    interrupt.check()
  finally:
    signal.signal(signal.SIGINT, previous)
  assert len(calls) == 1
  assert not interrupt.pending()


def testSwallowedInterrupt_StopsAFineTuneAtTheNextBatch(installed):
  model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
  model.compile('sgd', 'mse')
  batches = []

  class Swallow(keras.callbacks.Callback):

    def on_train_batch_begin(self, batch, logs=None):
      batches.append(batch)
      if batch == 2:
        _swallowed_sigint()

  ds = tf.data.Dataset.from_tensor_slices(
      (tf.zeros([64, 4]), tf.zeros([64, 2]))).batch(4)
  with pytest.raises(KeyboardInterrupt):
    train.fine_tune(model, ds, epochs=1, verbose=0, callbacks=[Swallow()])
  assert batches == [0, 1, 2]
