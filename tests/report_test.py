"""purl-report renders PNGs and Markdown from run outputs."""

import json
import os

import pytest

from purl_tf import io_utils, report


def _fake_run(path, method, target, accuracy, episodes=0, tflite=None):
  os.makedirs(path)
  layers = {'conv1': target - 0.1, 'fc1': target + 0.02}
  io_utils.write_json_atomic(os.path.join(path, 'summary.json'), {
      'method': method, 'target_sparsity': target,
      'reached_global_sparsity': target, 'dense_test_accuracy': 0.9,
      'pruned_test_accuracy': accuracy, 'per_layer_sparsity': layers,
      'gzip_bytes': {'ratio': 0.1, 'pruned': 10_000, 'dense': 100_000},
      'wall_s': {'total': 12.0}, 'tflite': tflite or {},
      'search': {'best_episode': 1} if episodes else {}})
  for k in range(episodes):
    io_utils.append_jsonl(os.path.join(path, 'episodes.jsonl'), {
        'episode': k, 'return': -1.0 + 0.1 * k, 'greedy': k == 2,
        'accuracies': [0.8, 0.85]})
  return str(path)


def testRender_WritesEveryPictureAndATable(tmp_path):
  runs = [_fake_run(tmp_path / 's', 'purl', 0.9, 0.87, episodes=4),
          _fake_run(tmp_path / 'u', 'uniform', 0.9, 0.85)]
  path = report.render(runs, str(tmp_path / 'out'))
  text = open(path).read()
  assert '| purl | 0.900 |' in text and '| uniform | 0.900 |' in text
  for name in ('per_layer_sparsity.png', 'search_curves.png',
               'accuracy_vs_sparsity.png'):
    with open(tmp_path / 'out' / name, 'rb') as f:
      assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    assert name in text


def testRender_NotARun_RaisesValueError(tmp_path):
  with pytest.raises(ValueError, match='summary.json'):
    report.render([str(tmp_path)], str(tmp_path / 'out'))


def testComparison_BestFirst_WithChangeFromDense_AndSaysTheDenseNetIsShared(
    tmp_path):
  runs = [report.load_run(_fake_run(tmp_path / m, m, 0.9, acc))
          for m, acc in (('uniform', 0.85), ('purl', 0.8915), ('lamp', 0.89))]
  lines = report.comparison(runs).splitlines()
  assert lines[0] == 'same dense net (test accuracy 0.9000)'
  assert [line.split()[0] for line in lines[2:]] == ['purl', 'lamp', 'uniform']
  assert lines[2].split()[1:] == ['0.9000', '0.8915', '-0.0085', '0.100x',
                                  '10.0']


def testComparison_WithTflite_ShowsItsSizeBesideTheSavedModelsAndTheDenseNets(
    tmp_path):
  tflite = {'float32': {'bytes': 12_300, 'dense_bytes': 123_000}}
  runs = [report.load_run(_fake_run(tmp_path / 'lamp', 'lamp', 0.9, 0.89,
                                    tflite=tflite)),
          report.load_run(_fake_run(tmp_path / 'old', 'uniform', 0.9, 0.85))]
  lines = report.comparison(runs).splitlines()
  assert lines[1].endswith('tflite KB')
  assert 'int8 KB' not in lines[1]  # no run wrote one
  assert lines[2].split()[-2:] == ['10.0', '12.3']
  assert lines[3].split()[-2:] == ['10.0', '-']  # a run without TFLite
  assert lines[4].split() == ['(dense', 'net)', '0.0000', '1.000x', '100.0',
                              '123.0']
