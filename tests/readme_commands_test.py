"""Every shell block of README.md that a user would run is run here.

The blocks are read from README.md, not copied. Each command is classified
and run the way this machine can run it:

- `tools/demo.sh` runs as `tools/demo.sh --smoke` (every stage, tiny sizes);
  `tools/test.sh` is what CI runs.
- The install block's commands are the ones `tools/bootstrap.sh` runs, which
  every CI run executes from scratch.
- The Fashion-MNIST tool commands run as written, in order, in a temporary
  directory, with the config's `:smoke` variant (CI time).
- The benchmark's `--quick` and `--report_only` lines run as written (into a
  temporary results directory); the multi-seed line runs with a budget that
  stops it before its first cell (it takes ~20 min a seed).
- The ImageNet and cluster commands need ImageNet and GPUs: their config
  and every override are loaded and checked as `purl-search` does before
  any work, and `TF_CONFIG` is parsed.
- A block preceded by `<!-- not run by the tests: REASON -->` is left out;
  only the serving block (it needs `tensorflow_model_server`) may be.
"""

import json
import os
import re
import shlex
import subprocess
import sys

from tests.conftest import REPO, subprocess_env, tool


def _blocks():
  with open(os.path.join(REPO, 'README.md')) as f:
    text = f.read()
  out = []
  for m in re.finditer(r'(<!-- not run by the tests: ([^>]*)-->\n)?```sh\n'
                       r'(.*?)```', text, re.S):
    out.append((m.group(2), m.group(3)))
  return out


def _commands(block):
  """Each command of a block as argv (continuation lines joined, comments
  dropped), with its environment assignments."""
  joined = block.replace('\\\n', ' ')
  commands = []
  for line in joined.splitlines():
    for part in line.split('&&'):
      words = shlex.split(part, comments=True)
      env = {}
      while words and re.match(r'^[A-Z_]+=', words[0]):
        key, value = words.pop(0).split('=', 1)
        env[key] = value
      if words:
        commands.append((env, words))
  return commands


def _all_commands():
  return [c for reason, block in _blocks() if reason is None
          for c in _commands(block)]


def testOnlyTheServingBlockIsLeftOut():
  left_out = [block for reason, block in _blocks() if reason is not None]
  assert len(left_out) == 1 and 'tensorflow_model_server' in left_out[0]
  assert len(_blocks()) >= 6


def testEveryCommandIsOfAKindThisTestRuns():
  known = ('tools/demo.sh', 'tools/test.sh', 'python3', '.', 'pip',
           'purl-search', 'purl-prune', 'purl-report', 'purl-config',
           'python')
  for _, words in _all_commands():
    assert words[0] in known, words


def testInstallBlock_IsWhatBootstrapRuns():
  with open(os.path.join(REPO, 'tools', 'bootstrap.sh')) as f:
    bootstrap = f.read()
  install = [w for _, w in _all_commands() if w[0] in ('python3', '.', 'pip')]
  assert [w[0] for w in install] == ['python3', '.', 'pip'], install
  for words in install:
    if words[0] == 'python3':
      assert words[1:] == ['-m', 'venv', '.venv'] and '-m venv' in bootstrap
    elif words[0] == '.':
      assert words[1:] == ['.venv/bin/activate']
      assert 'VENV="${PURL_VENV:-$REPO/.venv}"' in bootstrap
    else:
      # pip install -c constraints.txt -e '.[test]'
      assert words[:4] == ['pip', 'install', '-c', 'constraints.txt']
      assert words[4:] == ['-e', '.[test]']
      assert 'install -q -c "$REPO/constraints.txt"' in bootstrap
      assert '-e "$REPO[test]"' in bootstrap


def testQuickStart_DemoRunsEveryStage(tmp_path):
  demos = [w for _, w in _all_commands() if w[0] == 'tools/demo.sh']
  assert demos == [['tools/demo.sh']]
  assert [['tools/test.sh']] == [w for _, w in _all_commands()
                                 if w[0] == 'tools/test.sh']
  result = subprocess.run(['bash', 'tools/demo.sh', '--smoke'], cwd=REPO,
                          capture_output=True, text=True, timeout=900,
                          env=dict(subprocess_env(),
                                   PURL_DEMO_OUT=str(tmp_path / 'demo')))
  assert result.returncode == 0, result.stderr[-3000:]
  out = result.stdout
  assert 'result: ' in out and '== 3/3 comparison' in out
  for method in ('purl', 'lamp', 'uniform'):
    assert re.search(rf'\n  {method} +0\.9000 ', out), method
  assert (tmp_path / 'demo' / 'report' / 'report.md').exists()


def _fmnist_cli():
  return [w for _, w in _all_commands()
          if w[0].startswith('purl-') and not any('imagenet' in a for a in w)]


def testCommandLineBlock_RunsInOrder(tmp_path):
  commands = _fmnist_cli()
  names = [w[0] for w in commands]
  assert names[:5] == ['purl-search', 'purl-prune', 'purl-prune',
                       'purl-report', 'purl-config'], names
  cache = f'--config.train.cache_dir={tmp_path / "dense_cache"}'
  for words in commands[:5]:
    args = [re.sub(r'^--config=(configs/fmnist_\w+\.py)$',
                   lambda m: f'--config={os.path.join(REPO, m.group(1))}:smoke',
                   a) for a in words[1:]]
    if words[0] in ('purl-search', 'purl-prune'):
      args.append(cache)  # one dense net for the three
    result = subprocess.run(tool(words[0]) + args, cwd=tmp_path,
                            capture_output=True, text=True, timeout=900,
                            env=subprocess_env())
    assert result.returncode == 0, (words, result.stderr[-3000:])
  with open(tmp_path / 'workdirs' / 'lamp' / 'summary.json') as f:
    assert abs(json.load(f)['reached_global_sparsity'] - 0.95) < 0.005
  with open(tmp_path / 'workdirs' / 'search' / 'policy.json') as f:
    searched = json.load(f)['sparsity']
  with open(tmp_path / 'workdirs' / 'again' / 'summary.json') as f:
    assert json.load(f)['allocation'] == searched
  assert (tmp_path / 'workdirs' / 'report' / 'report.md').exists()


def testBenchmarkBlock_RunsAsWritten(tmp_path):
  lines = [w for _, w in _all_commands()
           if w[0] == 'python' and w[1] == 'benchmarks/fmnist.py']
  assert [w[2] for w in lines] == ['--quick', '--nets=fmnist_cnn',
                                   '--report_only'], lines
  out = ['--out=' + str(tmp_path / 'results'),
         '--workdir=' + str(tmp_path / 'work')]
  for words in lines:
    extra = list(out)
    if '--seeds=0,1,2' in words:
      extra.append('--budget_minutes=0.0001')  # stops before its first cell
    result = subprocess.run([sys.executable] + words[1:] + extra, cwd=REPO,
                            capture_output=True, text=True, timeout=1200,
                            env=subprocess_env())
    assert result.returncode == 0, (words, result.stderr[-3000:])
  with open(tmp_path / 'results' / 'fmnist_quick.json') as f:
    quick = json.load(f)
  methods = {c['method'] for c in quick['cells']}
  assert {'uniform', 'lamp', 'purl', 'purl_paper'} <= methods, methods
  assert all(c.get('chosen') for c in quick['cells']
             if c['method'].startswith('purl'))
  assert (tmp_path / 'results' / 'fmnist.md').exists()


def testImagenetAndClusterCommands_ConfigAndOverridesPassTheChecks():
  from purl_tf import config_defaults, search_loop  # pylint: disable=g-import-not-at-top
  commands = [(env, w) for env, w in _all_commands()
              if any('imagenet' in a for a in w)]
  assert len(commands) == 2
  for env, words in commands:
    assert words[0] == 'purl-search'
    flags = dict(a[2:].split('=', 1) for a in words[1:])
    config = config_defaults.load(os.path.join(REPO, flags.pop('config')))
    flags.pop('workdir')
    for key, value in flags.items():
      node = config
      *path, leaf = key.split('.')[1:]
      for part in path:
        node = node[part]
      old = node[leaf]
      node[leaf] = (value == 'True') if isinstance(old, bool) else type(old)(
          value)
    search_loop.check_config(config)
    if env:
      cluster = json.loads(env['TF_CONFIG'])
      assert len(cluster['cluster']['worker']) == 2
      assert config.strategy.name == 'multi_worker'
