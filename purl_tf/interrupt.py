"""Ctrl-C that a long run honours even where TensorFlow swallows it.

Python raises KeyboardInterrupt wherever the main thread happens to be when
the signal is handled. Inside TensorFlow that can be a callback run from
C++ or a finalizer, where the exception is turned into a status or dropped,
and the run goes on as if nothing happened (seen once in the test suite: a
search interrupted at its second episode ran to its end and exited 0).

`install()` (the command-line tools call it) makes SIGINT also leave a
mark; `check()`, called at every search step and after every training
batch (`train.fine_tune`, which the search's fine-tunes and selection run
through), raises KeyboardInterrupt for a mark whose exception never arrived. Without `install()` (the Python API
inside a user's program) `check()` does nothing and the user's own SIGINT
handling is untouched.
"""

import signal

_pending = False


def _handler(signum, frame):  # pylint: disable=unused-argument
  global _pending
  _pending = True
  raise KeyboardInterrupt


def install():
  """Makes SIGINT raise KeyboardInterrupt and leave a mark for `check()`."""
  global _pending
  _pending = False
  signal.signal(signal.SIGINT, _handler)


def pending() -> bool:
  """Whether SIGINT arrived since `install()`."""
  return _pending


def check():
  """Raises KeyboardInterrupt if SIGINT arrived since `install()`.

  Raises:
    KeyboardInterrupt: an interrupt arrived and its exception was lost.
  """
  if _pending:
    raise KeyboardInterrupt
