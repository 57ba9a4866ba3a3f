"""One run per workdir (purl_tf.workdir_lock), in-process and through the CLI."""

import os
import signal
import subprocess
import sys
import time

import pytest

from purl_tf import io_utils, workdir_lock
from tests.cli_test import SMOKE, one_line_error, start_search
from tests.conftest import REPO, subprocess_env, tool


def testSecondLock_FailsAtOnceNamingTheHolder(tmp_path):
  first = workdir_lock.WorkdirLock(str(tmp_path))
  first.acquire()
  first.record_pid()
  with pytest.raises(workdir_lock.WorkdirBusyError,
                     match=f'in use by process {os.getpid()}'):
    workdir_lock.WorkdirLock(str(tmp_path)).acquire()
  first.release()
  with workdir_lock.WorkdirLock(str(tmp_path)) as again:
    assert again.held


def testMissingWorkdir_IsNotCreatedUntilAsked(tmp_path):
  lock = workdir_lock.WorkdirLock(str(tmp_path / 'new'))
  lock.acquire()
  assert not lock.held and not (tmp_path / 'new').exists()
  lock.acquire(create=True)
  assert lock.held and (tmp_path / 'new').is_dir()
  lock.release()


def testKilledHolder_ReleasesTheLock(tmp_path):
  code = ('import sys, time; sys.path.insert(0, sys.argv[2]);'
          'from purl_tf import workdir_lock as w;'
          'l = w.WorkdirLock(sys.argv[1]); l.acquire(); l.record_pid();'
          'print("held", flush=True); time.sleep(60)')
  holder = subprocess.Popen([sys.executable, '-c', code, str(tmp_path), REPO],
                            stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == 'held'
    with pytest.raises(workdir_lock.WorkdirBusyError,
                       match=f'process {holder.pid}'):
      workdir_lock.WorkdirLock(str(tmp_path)).acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    with workdir_lock.WorkdirLock(str(tmp_path)) as lock:
      assert lock.held
  finally:
    if holder.poll() is None:
      holder.kill()


def testTwoRunsOnOneWorkdir_TheSecondFailsAtOnceTheFirstFinishes(smoke_search,
                                                                  tmp_path):
  workdir = tmp_path / 'busy'
  # Two episodes on the shared dense net: still running while the second
  # run starts and fails.
  first = start_search(workdir, '--config.search.episodes=2',
                       f'--config.train.cache_dir={smoke_search.dense_cache}')
  try:
    deadline = time.time() + 300
    while not (workdir / workdir_lock.PID_FILE).exists():
      assert first.poll() is None, first.communicate()[1][-2000:]
      assert time.time() < deadline
      time.sleep(0.5)
    second = subprocess.run(
        tool('purl-prune') + [f'--config={SMOKE}', f'--workdir={workdir}',
                              '--overwrite'],
        capture_output=True, text=True, env=subprocess_env(), cwd=REPO,
        timeout=300)
    one_line_error(second, f'in use by process {first.pid}')
    assert 'training the dense model' not in second.stdout
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-3000:]
  finally:
    if first.poll() is None:
      first.kill()
  episodes = io_utils.read_jsonl(str(workdir / 'episodes.jsonl'))
  assert [e['episode'] for e in episodes] == list(range(2))
  assert sorted(os.listdir(workdir / 'export' / 'fmnist_cnn')) == ['1']
