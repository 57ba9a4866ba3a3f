"""Atomic writes: a reader never sees a half-written output."""

import json
import os
import tempfile
from typing import Optional


def umask_mode(base: int = 0o666) -> int:
  """`base` less the process umask: the mode `open()` would give a new file.

  `tempfile.mkstemp` and `mkdtemp` create 0600 / 0700 entries; an output
  renamed into place from them would keep that mode, and another user (a TF
  Serving process, a colleague) could not read it.
  """
  mask = os.umask(0)
  os.umask(mask)
  return base & ~mask


def publish(path: str, write, suffix: str = ''):
  """Calls `write(tmp)` on a temporary name beside `path` (created with the
  user's file mode), then renames it into place; on any failure the
  temporary is removed and `path` is left as it was."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix='.tmp-', suffix=suffix, dir=directory)
  try:
    os.fchmod(fd, umask_mode())
    os.close(fd)
    write(tmp)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def write_json_atomic(path: str, obj, indent: int = 2):
  """Writes `obj` as JSON to a temporary file beside `path`, then renames it."""
  def write(tmp):
    with open(tmp, 'w') as f:
      json.dump(obj, f, indent=indent, sort_keys=True)
      f.write('\n')
      f.flush()
      os.fsync(f.fileno())
  publish(path, write, '.json')


def write_bytes_atomic(path: str, data: bytes):
  """Writes `data` to a temporary file beside `path`, then renames it."""
  def write(tmp):
    with open(tmp, 'wb') as f:
      f.write(data)
  publish(path, write)


def save_weights_atomic(model, path: str):
  """`model.save_weights(path)` through a temporary name beside `path`."""
  # Keras picks the format from the name's suffix: keep it.
  publish(path, model.save_weights, '-' + os.path.basename(path))


def append_jsonl(path: str, obj):
  """Appends one JSON line and flushes it to disk."""
  with open(path, 'a') as f:
    f.write(json.dumps(obj, sort_keys=True) + '\n')
    f.flush()
    os.fsync(f.fileno())


def read_jsonl(path: str, limit: Optional[int] = None):
  """Reads the complete lines of a JSON-lines file (a torn last line is dropped).

  Args:
    path: the file (missing: no rows).
    limit: read only the first `limit` lines; what follows is not decoded,
      so a damaged line past them does not matter.

  Raises:
    ValueError: a line that is not JSON (names the file and the line).
  """
  rows = []
  if not os.path.exists(path):
    return rows
  with open(path) as f:
    for number, line in enumerate(f, 1):
      if not line.endswith('\n') or (limit is not None and len(rows) >= limit):
        break
      try:
        rows.append(json.loads(line))
      except json.JSONDecodeError as e:
        raise ValueError(f'{path} line {number} is not JSON ({e.msg})') from None
  return rows
