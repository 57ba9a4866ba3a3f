"""BUILD stays true to the tree: every module and test file has its target,
every named file exists, and deps cover each file's imports."""

import os
import re

from tests.conftest import REPO
from tools import update_build

SOURCE_DIRS = ('purl_tf', 'tools', 'tests', 'configs', 'benchmarks', 'examples')


def _targets():
  targets = []

  def rule(kind):
    def add(**kwargs):
      targets.append(dict(kwargs, kind=kind))
    return add
  scope = {
      'load': lambda *args: None, 'package': lambda **kwargs: None,
      'requirement': lambda name: f'requirement:{name}',
      'glob': lambda patterns: patterns,
      'py_library': rule('py_library'), 'py_binary': rule('py_binary'),
      'py_test': rule('py_test'),
  }
  with open(os.path.join(REPO, 'BUILD')) as f:
    exec(compile(f.read(), 'BUILD', 'exec'), scope)  # pylint: disable=exec-used
  return targets


def _tree():
  found = set()
  for directory in SOURCE_DIRS:
    for root, dirs, files in os.walk(os.path.join(REPO, directory)):
      dirs[:] = [d for d in dirs if d != '__pycache__']
      for name in files:
        if name.endswith('.py'):
          found.add(os.path.relpath(os.path.join(root, name), REPO))
  return found


def testBuild_NamesEveryPythonFileExactlyOnce():
  named = [src for t in _targets() for src in t['srcs']]
  assert len(named) == len(set(named)), 'a file is in two targets'
  missing = _tree() - set(named)
  assert not missing, f'not in BUILD (run tools/update_build.py): {sorted(missing)}'


def testBuild_NamesNoFileThatDoesNotExist():
  for target in _targets():
    for src in target['srcs']:
      assert os.path.exists(os.path.join(REPO, src)), (target['name'], src)


def testEveryTestFile_IsAPyTest():
  tests = {s for t in _targets() if t['kind'] == 'py_test' for s in t['srcs']}
  expected = {p for p in _tree() if p.startswith('tests/') and p.endswith('_test.py')}
  assert tests == expected


def testDeps_CoverEachFilesImportsAndNameRealTargets():
  targets = _targets()
  by_src = {t['srcs'][0]: t for t in targets}
  names = {t['name'] for t in targets}
  for src, target in by_src.items():
    deps = set(target.get('deps', []))
    for dep in deps:
      if dep.startswith(':'):
        assert dep[1:] in names, (target['name'], dep)
    internal, external = update_build.imports(src)
    for path in internal:
      assert f':{by_src[path]["name"]}' in deps, (target['name'], path)
    for requirement in external:
      assert f'requirement:{requirement}' in deps, (target['name'], requirement)


def testBuild_IsWhatTheGeneratorWrites():
  assert update_build.main(['--check']) == 0


def testPackage_NamesNoBenchmarkFileAndNoRetiredSearchVariant():
  """The product carries the current method only: a finished study's story
  lives in research/, and benchmark files move when studies end."""
  retired = ('purl_nosens', 'purl_sens', 'purl_14ep', 'purl_accuracy',
             'purl_agent', 'purl_blend', 'purl_blendfirst', 'purl_norerank',
             'purl_refine', 'purl_rerank', 'purl_weighted', 'purl_select')
  package = os.path.join(REPO, 'purl_tf')
  for name in sorted(os.listdir(package)):
    if not name.endswith('.py'):
      continue
    with open(os.path.join(package, name)) as f:
      text = f.read()
    assert 'benchmarks/' not in text, name
    named = [v for v in retired if re.search(rf'\b{v}\b', text)]
    assert not named, (name, named)
