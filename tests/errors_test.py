"""Every row of the README's error table, through the CLI.

Each case gets one line `purl-xxx: error: ...` containing the README's text,
a non-zero exit code, no traceback, and leaves no output behind.
"""

import json
import os
import re
import shutil
import signal
import subprocess

import pytest

import purl_tf
from purl_tf.compat import keras, tf
from tests.cli_test import SMOKE, one_line_error, start_search
from tests.conftest import REPO, subprocess_env, tool


def _readme_table():
  with open(os.path.join(REPO, 'README.md')) as f:
    text = f.read()
  body = text.split('<!-- errors-table -->')[1].split('<!-- /errors-table -->')[0]
  rows = {}
  for line in body.strip().splitlines()[2:]:
    cells = [c.strip() for c in line.strip().strip('|').split('|')]
    rows[cells[0]] = re.fullmatch(r'`(.*)`', cells[2]).group(1)
  return rows


TABLE = _readme_table()


def _model_file(tmp_path, kind):
  if kind == 'tflite-unconvertible':
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = tf.math.betainc(x, x, tf.nn.sigmoid(x))  # no TFLite kernel
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation='softmax')(x))
  elif kind == 'image-shape':
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation='softmax')(x))
  else:
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Cropping2D(((0, 27), (0, 18)))(inputs)
    x = keras.layers.Reshape((10,))(x)
    model = keras.Model(inputs, keras.layers.Softmax()(x))
  path = str(tmp_path / f'{kind}.keras')
  model.save(path)
  return ['--config.model.name=file', f'--config.model.path={path}']


def _case_args(case, tmp_path):
  """(tool, extra arguments) that make `case` happen."""
  if case == 'missing-data-dir':
    return 'purl-prune', [f'--config.data.dir={tmp_path / "nowhere"}']
  if case == 'unknown-dataset':
    return 'purl-prune', ['--config.data.name=no_such_dataset_xyz',
                          f'--config.data.tfds_data_dir={tmp_path / "tfds"}']
  if case in ('image-shape', 'no-prunable-layer'):
    return 'purl-prune', _model_file(tmp_path, case)
  if case == 'tflite-unconvertible':
    return 'purl-search', _model_file(tmp_path, case) + [
        '--config.export.tflite=float32']
  if case == 'unknown-budget':
    return 'purl-search', ['--config.prune.budget=latency']
  if case == 'tflite-format':
    return 'purl-prune', ['--config.export.tflite=fp16']
  if case == 'empty-reward-split':
    return 'purl-search', ['--config.data.reward_size=0']
  if case == 'policy-for-other-model':
    policy = {'sparsity': {'conv1': 0.5, 'dense_7': 0.5}}
  elif case == 'policy-sparsity-range':
    policy = {'sparsity': {'conv1': 1.5, 'conv2': 0.5, 'fc1': 0.5, 'fc2': 0.5}}
  elif case == 'malformed-policy':
    policy = None
  else:
    policy = False
  if policy is not False:
    path = tmp_path / 'policy.json'
    path.write_text(json.dumps(policy) if policy else '{"sparsity": ')
    return 'purl-prune', ['--allocation=policy', f'--policy={path}']
  if case in ('malformed-config', 'missing-config'):
    path = tmp_path / 'config.py'
    if case == 'malformed-config':
      path.write_text('def get_config(:\n  pass\n')
    return 'purl-prune', [f'--config={path}']
  if case == 'unknown-override':
    return 'purl-search', ['--config.data.no_such_field=3']
  if case == 'flag-out-of-range':
    return 'purl-prune', ['--sparsity=-0.1']
  if case == 'flag-unknown-choice':
    return 'purl-prune', ['--allocation=magnitude']
  if case == 'resume-nothing':
    return 'purl-search', ['--resume']
  if case == 'workdir-is-file':
    return 'purl-prune', []
  if case == 'zero-episodes':
    return 'purl-search', ['--config.search.episodes=0']
  if case == 'nothing-scores-candidates':
    return 'purl-search', ['--config.select.short_steps=0']
  if case == 'unreachable-target':
    return 'purl-search', ['--config.env.action_space=absolute',
                           '--config.prune.sparsity=0.98']
  if case == 'unknown-reference':
    return 'purl-search', ['--config.search.references=lamp,magic']
  if case == 'final-finetune-nan':
    return 'purl-prune', ['--config.finetune.optimizer=sgd',
                          '--config.finetune.learning_rate=1e12']
  raise AssertionError(f'no trigger for README case {case!r}')


# What some error lines must say beyond the README's text.
EXTRA = {
    'missing-data-dir': ['--config.data.dir='],
    'policy-for-other-model': ['dense_7', 'fc1'],  # the policy's and the model's
    'tflite-unconvertible': ["layer 'tf.math.betainc'", "op 'tf.Betainc'"],
}

# workdir-busy is tested with two real runs in workdir_lock_test.py,
# damaged-state after a real search below.
CLI_CASES = sorted(set(TABLE) - {'subclassed-model', 'workdir-taken',
                                 'workdir-busy', 'damaged-state'})


@pytest.mark.parametrize('case', CLI_CASES)
def testReadmeErrorCase_OneLineNoOutputLeft(case, tmp_path):
  name, extra = _case_args(case, tmp_path)
  workdir = tmp_path / 'workdir'
  if case == 'workdir-is-file':
    workdir.write_text('notes')
  args = [f'--config={SMOKE}', f'--workdir={workdir}'] + extra
  result = subprocess.run(tool(name) + args, capture_output=True, text=True,
                          env=subprocess_env(), cwd=REPO, timeout=600)
  assert result.returncode in (2, 3), (result.returncode, result.stderr[-2000:])
  assert 'Traceback' not in result.stderr, result.stderr[-3000:]
  lines = [l for l in result.stderr.splitlines() if l.startswith(f'{name}: error:')]
  assert len(lines) == 1, result.stderr[-2000:]
  for text in [TABLE[case]] + EXTRA.get(case, []):
    assert text in lines[0], lines[0]
  if case != 'final-finetune-nan':  # refused before any work
    assert 'training the dense model' not in result.stdout, case
  if case == 'workdir-is-file':
    assert workdir.read_text() == 'notes'
  elif case != 'final-finetune-nan':
    assert not workdir.exists(), sorted(os.listdir(workdir))


def testReadmeErrorCase_WorkdirTakenIsLeftAlone(tmp_path):
  workdir = tmp_path / 'workdir'
  workdir.mkdir()
  (workdir / 'config.json').write_text('{"kind": "search"}')
  (workdir / 'policy.json').write_text('{}')
  result = subprocess.run(
      tool('purl-prune') + [f'--config={SMOKE}', f'--workdir={workdir}'],
      capture_output=True, text=True, env=subprocess_env(), cwd=REPO, timeout=300)
  assert result.returncode == 2
  assert TABLE['workdir-taken'] in result.stderr
  assert sorted(os.listdir(workdir)) == ['config.json', 'policy.json']


def testOverwriteWithABadConfig_LeavesTheFinishedRunByteIdentical(tmp_path):
  workdir = tmp_path / 'finished'
  workdir.mkdir()
  files = {'config.json': '{"kind": "search"}', 'policy.json': '{"a": 1}',
           'summary.json': '{"b": 2}', 'episodes.jsonl': '{"episode": 0}\n'}
  for name, text in files.items():
    (workdir / name).write_text(text)
  (workdir / 'export').mkdir()
  result = subprocess.run(
      tool('purl-search') + [f'--config={SMOKE}', f'--workdir={workdir}',
                             '--overwrite', '--config.env.grid=(0.0,1.5,0.05)'],
      capture_output=True, text=True, env=subprocess_env(), cwd=REPO,
      timeout=300)
  assert result.returncode == 2, result.stderr[-2000:]
  assert 'bad action grid' in result.stderr
  assert sorted(os.listdir(workdir)) == sorted(list(files) + ['export'])
  for name, text in files.items():
    assert (workdir / name).read_text() == text


def testResumeFromADamagedSearchState_OneLineFilesLeftAsTheyWere(
    smoke_search, tmp_path):
  workdir = tmp_path / 'damaged'
  shutil.copytree(smoke_search.workdir, workdir)
  args = smoke_search.args + [f'--workdir={workdir}']
  state = workdir / 'search_state.json'
  state.write_text(state.read_text()[:25])  # truncated, as by a crash
  before = {p: p.read_bytes() for p in workdir.rglob('*')
            if p.is_file() and p.name != '.purl.lock'}
  result = subprocess.run(tool('purl-search') + args + ['--resume'],
                          capture_output=True, text=True, env=subprocess_env(),
                          cwd=REPO, timeout=600)
  one_line_error(result, 'search_state.json is damaged', '--overwrite')
  after = {p: p.read_bytes() for p in workdir.rglob('*')
           if p.is_file() and p.name != '.purl.lock'}
  assert after == before


def testCtrlCDuringASearch_SaysResumeContinuesIt(smoke_search, tmp_path):
  workdir = tmp_path / 'interrupted'
  run = start_search(workdir,
                     f'--config.train.cache_dir={smoke_search.dense_cache}')
  seen = []
  try:
    for line in run.stdout:
      seen.append(line)
      if line.startswith('episode 2/'):
        break
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=300)
  finally:
    if run.poll() is None:
      run.kill()
  assert seen and seen[-1].startswith('episode 2/'), ''.join(seen)[-2000:]
  assert run.returncode == 130, (out[-1500:], err[-1500:])
  assert 'Traceback' not in err, err[-3000:]
  lines = [l for l in err.splitlines() if l.startswith('purl-search:')]
  assert lines == ['purl-search: interrupted; `--resume` continues the search '
                   'from its last finished episode']
  assert (workdir / 'search_state.json').exists()


class _Subclassed(keras.Model):

  def __init__(self):
    super().__init__()
    self.dense = keras.layers.Dense(10)

  def call(self, x):
    return self.dense(keras.layers.Flatten()(x))


def testReadmeErrorCase_SubclassedModel():
  model = _Subclassed()
  model(keras.Input((28, 28, 1)))
  with pytest.raises(ValueError, match=re.escape(TABLE['subclassed-model'])):
    purl_tf.apply(model, {'dense': 0.5})
