"""Periodic progress lines for long work: how far, how fast, how long left.

Dense training and fine-tunes at ImageNet sizes run for hours per epoch, a
sensitivity scan evaluates every layer at every grid sparsity: without a line
now and then a user cannot tell a slow run from a hung one. `Progress` prints
at most one line every `every_s` seconds (and none for work that ends sooner),
to stdout like the rest of purl_tf's progress output; `KerasProgress` does the
same inside `model.fit`, between Keras's own per-epoch lines.
"""

import sys
import time
from typing import Callable, Optional, TextIO

from purl_tf.compat import keras


def format_duration(seconds: float) -> str:
  """`75` -> '1m15s', `3700` -> '1h01m', `9` -> '9s'."""
  seconds = max(0, int(round(seconds)))
  if seconds < 60:
    return f'{seconds}s'
  if seconds < 3600:
    return f'{seconds // 60}m{seconds % 60:02d}s'
  return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m'


class Progress:
  """Prints `what: done/total unit (rate/s, ~T left)` every `every_s` seconds.

  Args:
    what: the work's name, first on each line.
    total: units the work has (> 0).
    unit: what a unit is called ('steps', 'evaluations').
    every_s: seconds between lines (> 0).
    out: the stream (default stdout).
    clock: seconds, monotonic (tests pass a fake one).

  Raises:
    ValueError: total or every_s not positive.
  """

  def __init__(self, what: str, total: int, unit: str = 'steps',
               every_s: float = 30.0, out: Optional[TextIO] = None,
               clock: Callable[[], float] = time.monotonic):
    if int(total) <= 0:
      raise ValueError(f'total must be positive, got {total}')
    if not every_s > 0:
      raise ValueError(f'every_s must be positive, got {every_s}')
    self.what, self.total, self.unit = what, int(total), unit
    self.every_s = float(every_s)
    self._out = out
    self._clock = clock
    self._start = clock()
    self._last = self._start

  def update(self, done: int) -> Optional[str]:
    """Reports `done` units finished; returns the line if one was printed."""
    now = self._clock()
    if now - self._last < self.every_s:
      return None
    self._last = now
    elapsed = now - self._start
    rate = done / elapsed if elapsed > 0 else 0.0
    left = (self.total - done) / rate if rate > 0 else float('nan')
    line = (f'  {self.what}: {done}/{self.total} {self.unit} '
            f'({rate:.3g}/s, ~{format_duration(left)} left)'
            if rate > 0 else f'  {self.what}: {done}/{self.total} {self.unit}')
    print(line, file=self._out or sys.stdout, flush=True)
    return line


class KerasProgress(keras.callbacks.Callback):
  """A `Progress` line every `every_s` seconds within each epoch of `fit`.

  Keras's `verbose=2` prints one line per epoch, nothing in between; an
  epoch of ImageNet is hours.
  """

  def __init__(self, every_s: float = 30.0, out: Optional[TextIO] = None,
               clock: Callable[[], float] = time.monotonic):
    super().__init__()
    self.every_s, self._out, self._clock = every_s, out, clock
    self._progress = None

  def on_epoch_begin(self, epoch, logs=None):
    steps = (self.params or {}).get('steps')
    epochs = (self.params or {}).get('epochs', 1)
    self._progress = (Progress(f'epoch {epoch + 1}/{epochs}', steps,
                               'steps', self.every_s, self._out, self._clock)
                      if steps else None)

  def on_train_batch_end(self, batch, logs=None):
    if self._progress is not None:
      self._progress.update(batch + 1)
