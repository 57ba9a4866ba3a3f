"""Tests for purl_tf.compare on hand-computed values."""

import math

import pytest

from purl_tf import compare


def _rows(table):
  """`{method: [acc of seed 0, seed 1, ...]}` at fmnist_cnn / 0.9."""
  return [{'net': 'fmnist_cnn', 'target': 0.9, 'method': m, 'seed': s,
           'test_accuracy': a}
          for m, accs in table.items() for s, a in enumerate(accs)]


def testMeanStd_SampleStandardDeviation():
  mean, std = compare.mean_std([0.80, 0.82, 0.84])
  assert mean == pytest.approx(0.82)
  assert std == pytest.approx(0.02)
  assert compare.mean_std([0.5]) == (0.5, 0.0)


def testBestBaseline_IsTheHighestMeanAndIgnoresPurl():
  rows = _rows({'lamp': [0.80, 0.84], 'erk': [0.83, 0.82],
                'purl': [0.99, 0.99]})
  assert compare.best_baseline(rows, 'fmnist_cnn', 0.9) == 'erk'


def testPaired_ClearWinBeyondTwoStandardErrors():
  rows = _rows({'lamp': [0.80, 0.81, 0.82], 'purl': [0.82, 0.84, 0.84]})
  p = compare.against_best_baseline(rows, 'fmnist_cnn', 0.9, 'purl')
  # Differences 0.02, 0.03, 0.02: mean 0.02333, std 0.005774, SE 0.003333.
  assert p['baseline'] == 'lamp'
  assert p['mean'] == pytest.approx(0.07 / 3)
  assert p['se'] == pytest.approx(0.005773503 / math.sqrt(3))
  assert (p['wins'], p['n'], p['verdict']) == (3, 3, 'win')
  assert compare.verdict_text(p).startswith('+2.33 ± 0.33 pt vs lamp, 3/3')


def testPaired_NoisyDifferenceIsATieAndAClearDropALoss():
  tie = _rows({'lamp': [0.80, 0.80, 0.80], 'purl': [0.83, 0.78, 0.80]})
  assert compare.against_best_baseline(tie, 'fmnist_cnn', 0.9,
                                       'purl')['verdict'] == 'tie'
  loss = _rows({'lamp': [0.80, 0.80, 0.80], 'purl': [0.78, 0.77, 0.78]})
  p = compare.against_best_baseline(loss, 'fmnist_cnn', 0.9, 'purl')
  assert (p['verdict'], p['wins']) == ('loss', 0)


def testPaired_OnlySharedSeedsCountAndOneSeedHasNoVerdict():
  rows = _rows({'lamp': [0.80], 'purl': [0.82, 0.90]})
  p = compare.against_best_baseline(rows, 'fmnist_cnn', 0.9, 'purl')
  assert p['seeds'] == [0] and p['se'] is None and p['verdict'] is None
  assert 'one seed' in compare.verdict_text(p)


def testBestBaseline_ChosenOnPurlsSeeds():
  # erk is better on seed 0 (the only one purl has); lamp over both seeds.
  rows = _rows({'lamp': [0.80, 0.95], 'erk': [0.85, 0.60], 'purl': [0.86]})
  assert compare.best_baseline(rows, 'fmnist_cnn', 0.9) == 'lamp'
  p = compare.against_best_baseline(rows, 'fmnist_cnn', 0.9, 'purl')
  assert p['baseline'] == 'erk'


def testAgainstOracle_PairsWithEachSeedsBestBaseline():
  # Seed 0: erk best (0.85); seed 1: lamp best (0.95). purl picks erk on
  # seed 0 and matches it, picks erk on seed 1 and loses 0.35 there.
  rows = _rows({'lamp': [0.80, 0.95], 'erk': [0.85, 0.60],
                'purl': [0.85, 0.60]})
  p = compare.against_oracle(rows, 'fmnist_cnn', 0.9, 'purl')
  assert p['picks'] == ['erk', 'lamp']
  assert p['diffs'] == pytest.approx([0.0, -0.35])
  assert p['mean'] == pytest.approx(-0.175)
  assert p['wins'] == 0
  # Against the best baseline by mean (lamp, 0.875) the same purl looks
  # better on seed 0: the oracle is the harder bar.
  assert compare.against_best_baseline(
      rows, 'fmnist_cnn', 0.9, 'purl')['diffs'] == pytest.approx([0.05, -0.35])


def testVerdictText_ADifferenceThatRoundsToZeroHasNoMinusSign():
  rows = _rows({'lamp': [0.8000, 0.8000], 'purl': [0.79999, 0.8000]})
  p = compare.against_best_baseline(rows, 'fmnist_cnn', 0.9, 'purl')
  assert compare.verdict_text(p).startswith('+0.00 ± 0.00 pt vs lamp')


def testAgainstOracle_NoBaselineOnPurlsSeedsIsNone():
  rows = _rows({'purl': [0.85]})
  assert compare.against_oracle(rows, 'fmnist_cnn', 0.9, 'purl') is None


def testMethodsIn_BaselinesFirst():
  rows = _rows({'purl': [0.8], 'erk': [0.8], 'uniform': [0.7],
                'purl_paper': [0.6]})
  assert compare.methods_in(rows) == ['uniform', 'erk', 'purl', 'purl_paper']
