"""One run per workdir: an OS lock held for the whole run.

Two processes writing one workdir interleave `episodes.jsonl`, export two
versions and leave a summary that names one of them. The lock is `flock` on
the workdir *directory* itself, so taking it writes nothing (a bad input
found afterwards leaves the workdir as it was); the kernel releases it when
the process ends, SIGKILL included, so a crashed run never leaves a stale
lock behind. Once the run writes, it also records its PID in `.purl.lock`,
so a second run can say which process holds the workdir.
"""

import errno
import fcntl
import os
from typing import Optional

PID_FILE = '.purl.lock'


class WorkdirBusyError(ValueError):
  """Another process holds the workdir."""


class WorkdirLock:
  """`flock` on a workdir directory, taken at once or not at all.

  Args:
    workdir: the run's output directory.
  """

  def __init__(self, workdir: str):
    if not workdir:
      raise ValueError('a workdir lock needs a directory')
    self.workdir = workdir
    self._fd: Optional[int] = None

  @property
  def held(self) -> bool:
    return self._fd is not None

  def acquire(self, create: bool = False):
    """Takes the lock; with `create`, makes the directory first.

    Without `create`, a workdir that does not exist yet is left alone (there
    is nothing to protect until the run creates it; call again with
    `create=True` then).

    Raises:
      WorkdirBusyError: another process holds it (names the process).
    """
    if self.held:
      return
    if not os.path.isdir(self.workdir):
      if not create:
        return
      os.makedirs(self.workdir, exist_ok=True)
    fd = os.open(self.workdir, os.O_RDONLY)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      os.close(fd)
      if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
        raise
      raise WorkdirBusyError(
          f'workdir {self.workdir} is in use by {self._holder()}; wait for '
          'it to finish or pick another --workdir') from None
    self._fd = fd

  def record_pid(self):
    """Writes this process's PID where a second run will read it."""
    if self.held:
      with open(os.path.join(self.workdir, PID_FILE), 'w') as f:
        f.write(f'{os.getpid()}\n')

  def _holder(self) -> str:
    try:
      with open(os.path.join(self.workdir, PID_FILE)) as f:
        return f'process {int(f.read().strip())}'
    except (OSError, ValueError):
      return 'another process'

  def release(self):
    if self._fd is not None:
      os.close(self._fd)  # closing the descriptor drops the flock
      self._fd = None

  def __enter__(self):
    self.acquire()
    return self

  def __exit__(self, *exc):
    self.release()
