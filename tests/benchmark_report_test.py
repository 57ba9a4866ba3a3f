"""The benchmark's report from a partial results file (a run in pieces).

Runs `benchmarks/fmnist.py --report_only` in a subprocess (the script
defines its own absl flags) on a results file written here.
"""

import json
import os
import subprocess
import sys

from tests.conftest import REPO, subprocess_env


def _cell(method, target, seed, acc):
  return {'net': 'fmnist_cnn', 'seed': seed, 'target': target,
          'method': method, 'config_digest': 'abc', 'test_accuracy': acc,
          'dense_test_accuracy': 0.89, 'sparsity': target,
          'per_layer_sparsity': {'conv1': 0.5, 'fc1': target},
          'gzip_ratio': 0.2, 'allocation_s': 1.0, 'finetune_s': 2.0,
          'wall_over_dense_train': 1.5}


def _report_only(tmp_path, payload):
  """The Markdown `fmnist.py --report_only` writes for `payload`."""
  (tmp_path / 'fmnist.json').write_text(json.dumps(payload))
  result = subprocess.run(
      [sys.executable, os.path.join(REPO, 'benchmarks', 'fmnist.py'),
       '--report_only', f'--out={tmp_path}', '--nets=fmnist_cnn'],
      capture_output=True, text=True, env=subprocess_env(), timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  return (tmp_path / 'fmnist.md').read_text()


def testReportOnly_PartialRunWithAVariantAtOneTarget(tmp_path):
  cells = [_cell(m, t, s, 0.8 + 0.01 * s + (0.005 if m == 'purl' else 0))
           for s in (0, 1) for t in (0.9, 0.98)
           for m in ('lamp', 'erk', 'purl')]
  # The variant ran at 0.98 only, and purl is missing at 0.9 for seed 1.
  cells += [_cell('purl_long', 0.98, s, 0.79) for s in (0, 1)]
  # Its cost also in CPU seconds, on one seed.
  cells[-1]['cpu_over_dense_train'] = 1.2
  # Seed 0's search at 0.98: two demonstrations, then three agent episodes
  # of which one ends above the better demonstration (0.62 > 0.61).
  for c in cells:
    if (c['method'], c['target'], c['seed']) == ('purl', 0.98, 0):
      c['curve'] = {'final_accuracy': [0.60, 0.61, 0.62, 0.50, 0.61],
                    'demo': [True, True, False, False, False],
                    'return': [0.0] * 5}
      c.update(best_episode=2, best_reference='erk')  # the 2nd demo
    if (c['method'], c['target'], c['seed']) == ('purl', 0.98, 1):
      c.update(best_episode=4, best_reference='lamp')  # an agent episode
  cells = [c for c in cells if not (c['method'] == 'purl' and
                                    c['target'] == 0.9 and c['seed'] == 1)]
  payload = {'schema': 2, 'cells': cells, 'dense': {
      f'fmnist_cnn/{s}/abc': {'net': 'fmnist_cnn', 'seed': s,
                              'test_accuracy': 0.89, 'train_s': 30.0}
      for s in (0, 1)}}
  md = _report_only(tmp_path, payload)
  # Paired over both seeds at 0.98: +0.5 pt every seed, zero spread.
  assert '| 0.98 | purl | +0.50 ± 0.00 pt vs lamp, 2/2 seeds' in md
  assert '| 0.90 | purl | +0.50 pt vs lamp, 1/1 seeds: **one seed**' in md
  # The oracle column: each seed's best baseline (lamp and erk tie; the
  # name breaks it), paired the same way.
  assert ('+0.50 ± 0.00 pt vs per-seed best, 2/2 seeds: **win** (lamp, lamp)'
          in md)
  assert '| 0.98 | purl_long |' in md
  variant = next(l for l in md.splitlines()
                 if l.startswith('| 0.98 | purl_long |'))
  assert '| 1.50 ± 0.00 (max 1.50); CPU 1.20 (1) |' in variant, variant
  assert '(max 1.50) |' in row_of(md, '| 0.98 | purl |')  # no CPU recorded
  row = next(l for l in md.splitlines() if l.startswith('| 0.98 | purl |'))
  assert row.endswith('| 1/3, - |'), row
  assert '| 0.90 | purl_long |' not in md
  assert '**Incomplete**' in md
  # Per seed: the seed's best baseline in bold (lamp and erk tie at 0.80 on
  # seed 0; the name breaks it, as in the oracle), what the search returned.
  tables = md.split('### Per seed', 1)[1]
  assert ('| 0 | 0.8900 | **0.8000** | 0.8000 | 0.8050 | 0.7900 | erk reference | '
          '1.50 |') in tables
  assert ('| 1 | 0.8900 | **0.8100** | 0.8100 | 0.8150 | 0.7900 | '
          'episode 4 (lamp) | 1.50 |') in tables
  # Seed 1 has no purl cell at 0.90.
  assert '| 1 | 0.8900 | **0.8100** | 0.8100 | - | - | - |' in tables
  for png in ('fmnist_cnn_accuracy_vs_target.png',
              'fmnist_cnn_per_layer_0.98.png'):
    assert (tmp_path / png).exists(), png


def testReportOnly_FinalistsTable_NamesEachScoreAndBoldsTheChosen(tmp_path):
  cells = [_cell(m, 0.98, 0, acc) for m, acc in (('lamp', 0.80),
                                                  ('erk', 0.82))]
  search = dict(_cell('purl', 0.98, 0, 0.82), best_episode=2,
                best_reference='erk',
                finalists={'lamp': 0.8202, 'erk': 0.8270,
                           'episode 4': 0.8100})
  search['curve'] = {'final_accuracy': [0.4, 0.39, 0.3, 0.42],
                     'demo': [True, True, False, False], 'return': [0.0] * 4}
  # A cell that kept the cross-entropy too (chosen by it: lamp).
  by_loss = dict(search, method='purl_loss', best_episode=1,
                 best_reference='lamp', test_accuracy=0.80,
                 finalists_loss={'lamp': 0.4812, 'erk': 0.5001,
                                 'episode 4': 0.5523})
  payload = {'schema': 2, 'cells': cells + [search, by_loss], 'dense': {
      'fmnist_cnn/0/abc': {'net': 'fmnist_cnn', 'seed': 0,
                           'test_accuracy': 0.89, 'train_s': 30.0}}}
  md = _report_only(tmp_path, payload)
  assert ('| 0.98 | purl | 0 | lamp 0.8202, **erk 0.8270**, episode 4 '
          '0.8100 | erk reference: 0.8200 |') in md, md
  assert ('| 0.98 | purl_loss | 0 | **lamp 0.8202 / 0.4812**, erk 0.8270 / '
          '0.5001, episode 4 0.8100 / 0.5523 | lamp reference: 0.8000 |') in md, md


def testReportOnly_OnlySearchCells_FindsTheirDenseNet(tmp_path):
  # A search's digest includes its search settings, so no cell shares the
  # dense record's digest ('dense'): the report takes the seed's record.
  cell = dict(_cell('purl', 0.98, 0, 0.85), config_digest='search')
  payload = {'schema': 2, 'cells': [cell], 'dense': {
      'fmnist_cnn/0/dense': {'net': 'fmnist_cnn', 'seed': 0,
                             'test_accuracy': 0.8877, 'train_s': 30.0}}}
  md = _report_only(tmp_path, payload)
  assert 'Dense: test accuracy 0.8877' in md, md
  assert 'training 30 s' in md, md


def testReportOnly_CellsNameTheirDenseNet_AnotherOfTheSeedIsLeftOut(tmp_path):
  # Two dense nets of seed 0, trained with different settings; the search
  # cells name the first. Matching by seed would average both (0.8850).
  cells = [dict(_cell('purl', t, 0, 0.85), config_digest='search',
                dense_key='fmnist_cnn/0/dense1') for t in (0.9, 0.98)]
  payload = {'schema': 2, 'cells': cells, 'dense': {
      'fmnist_cnn/0/dense1': {'net': 'fmnist_cnn', 'seed': 0,
                              'test_accuracy': 0.8800, 'train_s': 30.0},
      'fmnist_cnn/0/dense2': {'net': 'fmnist_cnn', 'seed': 0,
                              'test_accuracy': 0.8900, 'train_s': 90.0}}}
  md = _report_only(tmp_path, payload)
  assert 'Dense: test accuracy 0.8800 ± 0.0000 (1), training 30 s' in md, md


def _run_checked(code):
  """Runs `code` in a fresh interpreter (the script defines its own absl
  flags); it prints 'checked' when its assertions held."""
  result = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, env=subprocess_env(), timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'checked' in result.stdout


def row_of(md, start):
  return next(l for l in md.splitlines() if l.startswith(start))


def testReturned_NamesADemonstrationAnAgentEpisodeOrAnUnplayedReference():
  code = '\n'.join([
      'import sys', f'sys.path.insert(0, {os.path.join(REPO, "benchmarks")!r})',
      'import fmnist',
      'demo = {"best_episode": 2, "best_reference": "erk", "episodes": 5,',
      '        "curve": {"demo": [True, True, False, False, False]}}',
      'assert fmnist.returned(demo) == "erk reference"',
      'agent = dict(demo, best_episode=4)',
      'assert fmnist.returned(agent) == "episode 4 (erk)"',
      '# search.episodes=0: the references were the finalists, unplayed.',
      'none = {"best_episode": 2, "best_reference": "erk", "episodes": 0,',
      '        "curve": {"demo": []}}',
      'assert fmnist.returned(none) == "erk (no episode)", fmnist.returned(none)',
      'print("checked")'])
  _run_checked(code)


def testCheckSameDense_RefusesCellsOfAnotherDenseNet():
  # In a subprocess: the script defines its own absl flags.
  code = '\n'.join([
      'import sys', f'sys.path.insert(0, {os.path.join(REPO, "benchmarks")!r})',
      'import fmnist',
      'rec = {"test_accuracy": 0.9093, "weights_sha256": "aaaa"}',
      'fmnist.check_same_dense("k", rec, "aaaa", 0.9093)',
      'fmnist.check_same_dense("k", {}, "bbbb", 0.5)  # nothing recorded yet',
      '# A record without a digest: the accuracy within 3 images of 10,000.',
      'fmnist.check_same_dense("k", {"test_accuracy": 0.9093}, "x", 0.9095)',
      'for rec, sha, acc in [(rec, "bbbb", 0.9093),',
      '                      ({"test_accuracy": 0.9093}, "x", 0.9110)]:',
      '  try:',
      '    fmnist.check_same_dense("k", rec, sha, acc)',
      '  except ValueError as e:',
      '    assert "would not pair" in str(e) and "--dense_cache" in str(e), e',
      '  else:',
      '    raise AssertionError("another dense net was accepted")',
      'print("checked")'])
  _run_checked(code)


def testCheckMethods_AcceptsBlendsOfFreeAllocations_RefusesTheRest():
  code = '\n'.join([
      'import sys', f'sys.path.insert(0, {os.path.join(REPO, "benchmarks")!r})',
      'import fmnist',
      'fmnist.check_methods(["lamp", "purl", "lamp+erk", '
      '"global_magnitude+lamp+erk"])',
      'for bad in ["lamp+lamp", "lamp+sensitivity", "lamp+", "random", '
      '"purl+lamp"]:',
      '  try:',
      '    fmnist.check_methods(["lamp", bad])',
      '  except ValueError as e:',
      '    assert repr(bad) in str(e) and "lamp+erk" in str(e), e',
      '  else:',
      '    raise AssertionError(f"{bad} was accepted")',
      'print("checked")'])
  _run_checked(code)


def testConfigDigest_AnOptionAddedAtItsOldBehaviour_KeepsTheCellsDigest():
  # Cells measured before an option existed stay current while it keeps the
  # code path they ran (its value in ADDED_KEYS), and not once it changes.
  code = '\n'.join([
      'import sys', f'sys.path.insert(0, {os.path.join(REPO, "benchmarks")!r})',
      'import fmnist',
      'from purl_tf import config_defaults',
      'fmnist.ADDED_KEYS[("search", "new_option")] = False',
      'config = config_defaults.base_config()',
      'config.search.new_option = False',
      'default = fmnist.config_digest(config)',
      'del config.search["new_option"]',
      'before = fmnist.config_digest(config)',
      'config.search.new_option = True',
      'on = fmnist.config_digest(config)',
      'config.search.new_option = False',
      'config.search.episodes = 17',
      'other = fmnist.config_digest(config)',
      'assert default == before, (default, before)',
      'assert len({default, on, other}) == 3, (default, on, other)',
      '# data.autotune changes speed, not batches: out of every digest.',
      'config.search.episodes = 16',
      'for method in ("purl", "lamp"):',
      '  config.data.autotune = True',
      '  with_on = fmnist.config_digest(config, method)',
      '  config.data.autotune = False',
      '  assert fmnist.config_digest(config, method) == with_on, method',
      '  del config.data["autotune"]',
      '  assert fmnist.config_digest(config, method) == with_on, method',
      '  config.data.autotune = False',
      'print("checked")'])
  _run_checked(code)


def testCellDigest_AVariantIsKeyedByItsOwnSettings():
  # A variant's cells are keyed by the settings it ran with: changing its
  # overrides under the same name measures it again, and a variant whose
  # settings are the default search's shares the default's digest.
  code = '\n'.join([
      'import sys', f'sys.path.insert(0, {os.path.join(REPO, "benchmarks")!r})',
      'import fmnist',
      'from purl_tf import config_defaults',
      'fmnist.flags.FLAGS(["x", "--variant=few:search.episodes=3",',
      '                    "--variant=more:search.episodes=4",',
      '                    "--variant=refs:search.references=lamp,erk"])',
      'config = config_defaults.base_config()',
      'default = fmnist.cell_digest(config, "purl")',
      'assert default == fmnist.config_digest(config, "purl")',
      'few, more = (fmnist.cell_digest(config, m) for m in ("purl_few", "purl_more"))',
      'assert len({default, few, more}) == 3, (default, few, more)',
      'same = config_defaults.base_config()',
      'same.search.references = "lamp,erk"',
      'assert fmnist.cell_digest(config, "purl_refs") == fmnist.cell_digest(same, "purl")',
      '# A free allocation reads no search setting.',
      'assert fmnist.cell_digest(config, "lamp") == fmnist.config_digest(config, "lamp")',
      'print("checked")'])
  _run_checked(code)


def testSplitOverrides_AListValue_StaysOneItem():
  code = '\n'.join([
      'import sys', f'sys.path.insert(0, {os.path.join(REPO, "benchmarks")!r})',
      'import fmnist',
      'items = fmnist.split_overrides("search.references=lamp,erk,lamp+erk,'
      'select.top_episodes=2,env.scales=(-0.5,0.5,0.125)")',
      'assert items == ["search.references=lamp,erk,lamp+erk", '
      '"select.top_episodes=2", "env.scales=(-0.5,0.5,0.125)"], items',
      'from purl_tf import config_defaults',
      'config = fmnist.apply_overrides(config_defaults.base_config(), items)',
      'assert config.env.scales == (-0.5, 0.5, 0.125), config.env.scales',
      'assert config.select.top_episodes == 2',
      'assert fmnist.split_overrides("search.episodes=40") == '
      '["search.episodes=40"]',
      'print("checked")'])
  _run_checked(code)


def testCommittedResults_RegenerateByteForByte_AndEveryCellIsCurrent(
    tmp_path):
  """The committed report is what the committed cells give, and each cell's
  digest is what today's configs give (none reported as missing beyond
  the requested cells never run, which the file itself lists)."""
  results = os.path.join(REPO, 'benchmarks', 'results')
  with open(os.path.join(results, 'fmnist.json'), 'rb') as f:
    (tmp_path / 'fmnist.json').write_bytes(f.read())
  result = subprocess.run(
      [sys.executable, os.path.join(REPO, 'benchmarks', 'fmnist.py'),
       '--report_only', f'--out={tmp_path}'],
      capture_output=True, text=True, env=subprocess_env(), timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  names = sorted(n for n in os.listdir(tmp_path) if n != 'fmnist.json')
  assert 'fmnist.md' in names and len(names) == 6, names
  for name in names:
    with open(os.path.join(results, name), 'rb') as f:
      assert (tmp_path / name).read_bytes() == f.read(), name
  # Only the current methods: the retired search variants live in research/.
  with open(tmp_path / 'fmnist.json') as f:
    methods = {c['method'] for c in json.load(f)['cells']}
  assert methods <= {'uniform', 'global_magnitude', 'lamp', 'erk',
                     'sensitivity', 'lamp+erk', 'purl', 'purl_paper'}, methods


def testCurveRuns_BestSoFarPerSeed_CutToEqualEvaluations_OnlyWhereTwoStrategiesRan():
  code = '\n'.join([
      'import sys', f'sys.path.insert(0, {os.path.join(REPO, "benchmarks")!r})',
      'import fmnist',
      'def row(m, t, accs):',
      '  return {"method": m, "target": t, "curve": {"final_accuracy": accs}}',
      'rows = [row("purl_agent", 0.95, [0.5, None, 0.7, 0.6]),',
      '        row("purl_agent", 0.95, [0.4, 0.6, 0.5, 0.8]),',
      '        row("purl_random", 0.95, [0.5, 0.55, 0.5]),',
      '        row("purl_agent", 0.9, [0.8, 0.9]),  # no other strategy there',
      '        row("purl", 0.95, [0.1, 0.2])]  # not a curve method',
      'got = fmnist.curve_runs(rows)',
      'assert sorted(got) == [(0.95, "purl_agent"), (0.95, "purl_random")], got',
      'assert got[(0.95, "purl_agent")] == [[0.5, 0.5, 0.7], [0.4, 0.6, 0.6]]',
      'assert got[(0.95, "purl_random")] == [[0.5, 0.55, 0.55]]',
      'print("checked")'])
  _run_checked(code)
