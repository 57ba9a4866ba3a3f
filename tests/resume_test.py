"""A search killed with SIGKILL mid-episode resumes to the uninterrupted result.

Real subprocesses, real Fashion-MNIST (the :smoke config), seeded; op
determinism is on by default (config.deterministic).
"""

import json
import os
import signal
import subprocess
import time

from purl_tf import io_utils
from tests.cli_test import SMOKE
from tests.conftest import REPO, subprocess_env, tool

ARGS = [f'--config={SMOKE}', '--config.search.episodes=6',
        '--config.finetune.epochs=1']


def _search(workdir, *extra):
  result = subprocess.run(tool('purl-search') + ARGS + [f'--workdir={workdir}'] +
                          list(extra), capture_output=True, text=True,
                          env=subprocess_env(), cwd=REPO, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  return result


def _kill_during_episode(workdir, *extra, after_lines=2, timeout=300):
  proc = subprocess.Popen(tool('purl-search') + ARGS + [f'--workdir={workdir}',
                                                          *extra],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          env=subprocess_env(), cwd=REPO)
  path = os.path.join(workdir, 'episodes.jsonl')
  deadline = time.time() + timeout
  try:
    while time.time() < deadline and proc.poll() is None:
      if len(io_utils.read_jsonl(path)) >= after_lines:
        time.sleep(0.4)  # into the next episode
        break
      time.sleep(0.05)
    assert proc.poll() is None, 'the search ended before it could be killed'
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
  finally:
    if proc.poll() is None:
      proc.kill()
  return io_utils.read_jsonl(path)


def _load(workdir, name):
  with open(os.path.join(workdir, name)) as f:
    return json.load(f)


def testKilledSearch_ResumesWithoutLosingOrRepeatingEpisodes(smoke_search,
                                                              tmp_path):
  # The uninterrupted reference is the shared smoke search (6 episodes, one
  # fine-tune epoch: ARGS); the killed run loads its cached dense net.
  reference = str(smoke_search.workdir)
  killed = str(tmp_path / 'killed')
  cache = f'--config.train.cache_dir={smoke_search.dense_cache}'
  before = _kill_during_episode(killed, cache)
  assert 2 <= len(before) < 6
  assert not os.path.exists(os.path.join(killed, 'policy.json'))
  result = _search(killed, cache, '--resume')
  assert 'resuming at episode' in result.stdout

  rows = io_utils.read_jsonl(os.path.join(killed, 'episodes.jsonl'))
  assert [r['episode'] for r in rows] == list(range(6))
  ref_rows = io_utils.read_jsonl(os.path.join(reference, 'episodes.jsonl'))
  for mine, theirs in zip(rows, ref_rows):
    assert mine['actions'] == theirs['actions'], mine['episode']
    assert mine['rewards'] == theirs['rewards'], mine['episode']
  assert _load(killed, 'policy.json') == _load(reference, 'policy.json')
  # The final fine-tune does not depend on how many episodes this process ran.
  assert (_load(killed, 'summary.json')['weights_sha256'] ==
          _load(reference, 'summary.json')['weights_sha256'])
  # No TensorFlow start-up lines, no optimizer-restore warning on resume.
  assert result.stderr == ''


def testResumeWithAnotherConfig_IsRefused(tmp_path):
  workdir = str(tmp_path / 'w')
  os.makedirs(workdir)
  with open(os.path.join(workdir, 'config.json'), 'w') as f:
    json.dump({'kind': 'search', 'config': {'seed': 123}}, f)
  result = subprocess.run(tool('purl-search') + ARGS + [f'--workdir={workdir}',
                                                          '--resume'],
                          capture_output=True, text=True, env=subprocess_env(),
                          cwd=REPO, timeout=300)
  assert result.returncode == 2
  assert 'another config' in result.stderr
