"""End-to-end runs of purl-prune and purl-search on real Fashion-MNIST.

Each runs the installed console script in a subprocess, as a user would.
"""

import json
import os
import subprocess

import numpy as np
import pytest

import purl_tf
from purl_tf import export, io_utils
from purl_tf.compat import tf
from tests.conftest import REPO, SMOKE, subprocess_env, tool


def _run(name, *args, timeout=600):
  return subprocess.run(tool(name) + list(args), capture_output=True, text=True,
                        env=subprocess_env(), cwd=REPO, timeout=timeout)


def start_search(workdir, *args):
  """A smoke `purl-search` in the background, its output piped."""
  return subprocess.Popen(
      tool('purl-search') + [f'--config={SMOKE}', f'--workdir={workdir}'] +
      list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
      env=subprocess_env(), cwd=REPO)


def _check_export(summary):
  path = summary['export_path']
  assert os.path.exists(os.path.join(path, 'saved_model.pb'))
  serve = tf.saved_model.load(path).signatures['serving_default']
  out = serve(image=tf.zeros([2, 28, 28, 1]))[export.OUTPUT_NAME]
  assert out.shape == (2, 10)


def _check_keras_file(summary):
  # The Keras file reloads to the exported net: same predictions as the
  # SavedModel's signature, same per-layer sparsity.
  model = purl_tf.load_keras_model(summary['keras_model'])
  x = np.random.RandomState(0).rand(16, 28, 28, 1).astype(np.float32)
  serve = tf.saved_model.load(summary['export_path']).signatures[
      'serving_default']
  np.testing.assert_allclose(
      model.predict(x, verbose=0),
      serve(image=tf.constant(x))[export.OUTPUT_NAME].numpy(), atol=1e-6)
  assert purl_tf.sparsity_report(model)['layers'] == pytest.approx(
      summary['per_layer_sparsity'])


def testPruneSmoke_ReachesRequestedSparsityAndExports(smoke_search, tmp_path):
  workdir = str(tmp_path / 'run')
  result = _run('purl-prune', *smoke_search.args, '--allocation=uniform',
                '--sparsity=0.9', f'--workdir={workdir}',
                '--config.export.tflite=float32,int8')
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'global sparsity' in result.stdout
  with open(os.path.join(workdir, 'summary.json')) as f:
    summary = json.load(f)
  assert abs(summary['reached_global_sparsity'] - 0.9) <= 0.005
  assert summary['reached_global_sparsity'] >= 0.895
  assert set(summary['per_layer_sparsity']) == {'conv1', 'conv2', 'fc1', 'fc2'}
  assert 0.0 < summary['pruned_test_accuracy'] <= 1.0
  assert summary['gzip_bytes']['ratio'] < 0.2
  # CPU seconds beside wall seconds: all threads, so at most the wall time
  # on every core.
  cpu, wall = summary['cpu_s']['finetune'], summary['wall_s']['finetune']
  assert 0.0 < cpu <= wall * os.cpu_count() + 1.0
  _check_export(summary)
  _check_keras_file(summary)
  assert os.listdir(os.path.join(workdir, 'tensorboard', 'finetune'))
  # TFLite: float32 agrees with Keras on the test split, zeros stored
  # sparse; int8 is smaller still and reports its own accuracy.
  tflite = summary['tflite']
  assert sorted(tflite) == ['float32', 'int8']
  fp32, int8 = tflite['float32'], tflite['int8']
  assert fp32['examples'] == 2000  # the :smoke test split
  assert fp32['agreement'] >= 0.999
  assert fp32['ratio'] < 0.3 and int8['bytes'] < fp32['bytes']
  assert abs(int8['accuracy'] - summary['pruned_test_accuracy']) < 0.05
  for row, name in ((fp32, 'pruned.tflite'), (int8, 'pruned_int8.tflite')):
    assert row['path'] == os.path.join(os.path.abspath(workdir), name)
    assert os.path.getsize(row['path']) == row['bytes']
  assert 'pruned.tflite: ' in result.stdout


def testSearchSmoke_WritesEveryOutputThenPolicyAppliesWithPurlPrune(
    smoke_search, tmp_path):
  workdir = str(smoke_search.workdir)
  stdout = smoke_search.stdout
  assert 'episode 6/6' in stdout
  # Which episode won, and whether it was a reference (a free allocation).
  with open(os.path.join(workdir, 'summary.json')) as f:
    search = json.load(f)['search']
  best = search['best_episode']
  refs = ('lamp', 'erk')  # the smoke config's search.references
  expected = (f'the {refs[best]} reference' if best < 2 else
              f'episode {best + 1} (relative to ')
  assert search['chosen'].startswith(expected)
  assert f'result: {search["chosen"]}: ' in stdout
  for name in ('policy.json', 'episodes.jsonl', 'summary.json', 'config.json',
               'search_state.json', 'pruned.keras'):
    assert os.path.exists(os.path.join(workdir, name)), name
  assert tf.io.gfile.glob(os.path.join(workdir, 'checkpoints', 'ckpt-*.index'))
  assert tf.io.gfile.glob(os.path.join(workdir, 'tensorboard', 'search', 'events.*'))
  assert os.path.exists(os.path.join(workdir, 'greedy_policy', 'saved_model.pb'))
  episodes = io_utils.read_jsonl(os.path.join(workdir, 'episodes.jsonl'))
  assert [e['episode'] for e in episodes] == list(range(6))
  assert all(len(e['rewards']) == 4 and len(e['accuracies']) == 4 for e in episodes)
  with open(os.path.join(workdir, 'policy.json')) as f:
    policy = json.load(f)
  assert policy['metrics']['global_sparsity'] >= 0.9 - 0.005
  with open(os.path.join(workdir, 'summary.json')) as f:
    summary = json.load(f)
  assert summary['method'] == 'purl' and summary['search']['episodes'] == 6
  assert summary['reached_global_sparsity'] >= 0.895
  _check_export(summary)

  # The found policy applies through purl-prune's code path.
  prune_dir = str(tmp_path / 'apply')
  result = _run('purl-prune', *smoke_search.args, '--allocation=policy',
                f'--policy={os.path.join(workdir, "policy.json")}',
                f'--workdir={prune_dir}')
  assert result.returncode == 0, result.stderr[-3000:]
  with open(os.path.join(prune_dir, 'summary.json')) as f:
    applied = json.load(f)
  for name, target in policy['sparsity'].items():
    assert applied['per_layer_sparsity'][name] == pytest.approx(target, abs=0.005)


def one_line_error(result, *fragments):
  assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
  lines = [l for l in result.stderr.splitlines() if l.startswith('purl-')]
  assert len(lines) == 1, result.stderr[-2000:]
  assert 'Traceback' not in result.stderr
  for fragment in fragments:
    assert fragment in lines[0], lines[0]


def testSearchAtNinetyNinePercent_RunsARealSearchAndMeetsTheTarget(smoke_search,
                                                                   tmp_path):
  workdir = str(tmp_path / 'search99')
  result = _run('purl-search', *smoke_search.args, f'--workdir={workdir}',
                '--config.prune.sparsity=0.99', '--config.search.episodes=4',
                '--config.search.references=lamp,erk')
  assert result.returncode == 0, result.stderr[-3000:]
  episodes = io_utils.read_jsonl(os.path.join(workdir, 'episodes.jsonl'))
  # Not one degenerate allocation: the two demonstrations and the agent's
  # episodes differ, and each meets the target.
  assert len({tuple(round(s, 4) for s in e['sparsity']) for e in episodes}) >= 3
  assert all(abs(e['global_sparsity'] - 0.99) < 1e-6 for e in episodes)
  with open(os.path.join(workdir, 'summary.json')) as f:
    summary = json.load(f)
  assert summary['reached_global_sparsity'] == pytest.approx(0.99, abs=0.001)


@pytest.mark.parametrize('name,own_flags', [
    ('purl-prune', ['--allocation', '--sparsity', '--policy', '--workdir',
                    '--config', '--overwrite']),
    ('purl-search', ['--resume', '--overwrite', '--workdir', '--config']),
    ('purl-report', ['--workdir']),
    ('purl-config', ['--config']),
])
def testHelp_ListsTheToolsOwnFlags(name, own_flags):
  result = _run(name, '--help', timeout=120)
  # absl ends --help with exit code 1, its convention; the text is the test.
  assert 'Traceback' not in result.stderr
  for flag in own_flags:
    # Booleans print as --[no]name.
    shown = (f'  {flag}:' in result.stdout or
             f'  --[no]{flag[2:]}:' in result.stdout)
    assert shown, (flag, result.stdout[-2000:])
  assert 'Try --helpfull' in result.stdout


def testPurlConfig_PrintsEveryKeyWithItsMeaning_OverridesShowTheirDefault():
  result = _run('purl-config', f'--config={SMOKE}',
                '--config.search.episodes=9', timeout=120)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stderr == ''
  for key in ('seed', 'model.name', 'select.finalists', 'agent.gamma',
              'export.version'):
    assert f'\n{key} = ' in '\n' + result.stdout, key
  assert 'search.episodes = 9   (default 16)' in result.stdout
  assert 'final accuracy drop' in result.stdout  # a meaning, from the comments


def testTargetAboveWhatTheAllocationReaches_SaysNotMet(smoke_search, tmp_path):
  workdir = tmp_path / 'miss'
  # global_magnitude caps every layer at 0.99, so 0.999 cannot be reached.
  result = _run('purl-prune', *smoke_search.args, '--sparsity=0.999',
                '--allocation=global_magnitude', f'--workdir={workdir}')
  assert result.returncode == 0, result.stderr[-3000:]
  assert '(target 0.9990, NOT MET)' in result.stdout
  assert 'WARNING: the pruned net reached global sparsity 0.99' in result.stdout
  summary = json.loads((workdir / 'summary.json').read_text())
  assert summary['target_met'] is False
  assert summary['reached_global_sparsity'] < 0.995


def testPolicyWithAnInvalidStatedTarget_ReportsItsOwnSparsity(smoke_search,
                                                              tmp_path):
  policy = tmp_path / 'policy.json'
  policy.write_text(json.dumps({
      'sparsity': {'conv1': 0.5, 'conv2': 0.5, 'fc1': 0.5, 'fc2': 0.5},
      'metrics': {'target_sparsity': 5}}))
  workdir = tmp_path / 'applied'
  result = _run('purl-prune', *smoke_search.args, '--allocation=policy',
                f'--policy={policy}', f'--workdir={workdir}')
  assert result.returncode == 0, result.stderr[-3000:]
  summary = json.loads((workdir / 'summary.json').read_text())
  assert summary['target_sparsity'] == pytest.approx(0.5)
  assert summary['target_met'] is True


def testFlopsBudget_SearchAndPruneMeetTheTargetInFlops(smoke_search, tmp_path):
  # prune.budget=flops: the target counts multiply-accumulates. On the CNN
  # the Dense layer holds most weights but few FLOPs, so the parameter
  # share removed differs from the FLOPs share.
  workdir = str(tmp_path / 'flops')
  result = _run('purl-search', *smoke_search.args, f'--workdir={workdir}',
                '--config.prune.budget=flops', '--config.search.episodes=3')
  assert result.returncode == 0, result.stderr[-3000:]
  with open(os.path.join(workdir, 'summary.json')) as f:
    summary = json.load(f)
  assert summary['budget'] == 'flops' and summary['target_met']
  assert summary['reached_budget_sparsity'] == pytest.approx(0.9, abs=0.005)
  assert summary['reached_flops_sparsity'] == summary['reached_budget_sparsity']
  assert abs(summary['reached_global_sparsity'] - 0.9) > 0.005
  episodes = io_utils.read_jsonl(os.path.join(workdir, 'episodes.jsonl'))
  assert all(e['global_sparsity'] == pytest.approx(0.9, abs=1e-6)
             for e in episodes)
  prune_dir = str(tmp_path / 'lamp_flops')
  result = _run('purl-prune', *smoke_search.args, '--allocation=lamp',
                '--config.prune.budget=flops', f'--workdir={prune_dir}')
  assert result.returncode == 0, result.stderr[-3000:]
  with open(os.path.join(prune_dir, 'summary.json')) as f:
    lamp = json.load(f)
  assert lamp['reached_flops_sparsity'] == pytest.approx(0.9, abs=0.005)
