"""MultiWorkerMirroredStrategy: two worker processes on 127.0.0.1.

Both run the same `purl-prune` smoke command with their own TF_CONFIG (free
ports, bounded time, both stopped at the end). They must agree on the pruned
weights; only the chief (worker 0) writes the workdir.
"""

import json
import os
import signal
import socket
import subprocess
import time

from tests.cli_test import SMOKE
from tests.conftest import REPO, subprocess_env, tool

TIMEOUT_S = 480


def _free_ports(n):
  sockets = [socket.socket() for _ in range(n)]
  for s in sockets:
    s.bind(('127.0.0.1', 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def _start_workers(workdir, extra=()):
  cluster = {'worker': [f'127.0.0.1:{p}' for p in _free_ports(2)]}
  procs = []
  for index in range(2):
    env = subprocess_env()
    env['TF_CONFIG'] = json.dumps({'cluster': cluster,
                                   'task': {'type': 'worker', 'index': index}})
    procs.append(subprocess.Popen(
        tool('purl-prune') + [f'--config={SMOKE}', f'--workdir={workdir}',
                              '--config.strategy.name=multi_worker',
                              '--config.strategy.collective_timeout_s=60',
                              '--config.data.train_size=2048',
                              '--config.data.test_size=512', *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        cwd=REPO))
  return procs


def _finish(procs, timeout=TIMEOUT_S):
  outputs = []
  deadline = time.time() + timeout
  try:
    for proc in procs:
      out, err = proc.communicate(timeout=max(1, deadline - time.time()))
      outputs.append((proc.returncode, out, err))
  finally:
    for proc in procs:
      if proc.poll() is None:
        proc.kill()
        proc.wait()
  return outputs


def _digest(stdout):
  line = next(l for l in stdout.splitlines() if l.startswith('weights sha256:'))
  return line.split(':', 1)[1].strip()


def testTwoWorkers_AgreeAndOnlyTheChiefWrites(tmp_path):
  workdir = tmp_path / 'run'
  outputs = _finish(_start_workers(workdir))
  for rc, out, err in outputs:
    assert rc == 0, err[-3000:]
  assert _digest(outputs[0][1]) == _digest(outputs[1][1])
  with open(workdir / 'summary.json') as f:
    summary = json.load(f)
  assert summary['weights_sha256'] == _digest(outputs[0][1])
  assert abs(summary['reached_global_sparsity'] - 0.9) <= 0.005
  assert sorted(os.listdir(tmp_path)) == ['run']


def testLostWorker_FailsWithAnErrorNotASilentResult(tmp_path):
  workdir = tmp_path / 'run'
  procs = _start_workers(workdir)
  # Kill worker 1 once the final fine-tune has started (the chief then waits
  # on it): its own output says when, whatever the machine's load.
  deadline = time.time() + TIMEOUT_S
  for line in procs[1].stdout:
    if line.startswith('final fine-tune') or time.time() > deadline:
      break
  time.sleep(2)
  if procs[1].poll() is None:
    procs[1].send_signal(signal.SIGKILL)
  outputs = _finish(procs, timeout=300)
  rc, out, err = outputs[0]
  if rc == 0:
    # The chief had already finished: then its result must be complete.
    with open(workdir / 'summary.json') as f:
      assert abs(json.load(f)['reached_global_sparsity'] - 0.9) <= 0.005
  else:
    assert rc == 4, err[-3000:]
    assert not (workdir / 'summary.json').exists()
    assert 'Traceback' not in err, err[-3000:]
    assert 'purl-prune: error: lost a worker' in err
