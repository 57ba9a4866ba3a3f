"""Tests for purl_tf.reward on hand-computed values."""

import ml_collections
import pytest

from purl_tf import reward


def testTargetPenalty_HandComputed():
  r = reward.TargetPenaltyReward(accuracy_weight=2.0, sparsity_weight=1.0,
                                 allowed_drop=0.05)
  # A* = 0.85: acc 0.68 is 20% short; S* = 0.8: s 0.6 is 25% short.
  got = r(accuracy=0.68, sparsity=0.6, dense_accuracy=0.9, target_sparsity=0.8)
  assert got == pytest.approx(-(2.0 * 0.2 + 1.0 * 0.25))


def testTargetPenalty_IsZeroOnTarget():
  r = reward.TargetPenaltyReward()
  assert r(accuracy=0.95, sparsity=0.9, dense_accuracy=0.9,
           target_sparsity=0.9) == 0.0


def testAccuracySparsity_HandComputed():
  r = reward.AccuracySparsityReward(sparsity_weight=0.5)
  got = r(accuracy=0.45, sparsity=0.8, dense_accuracy=0.9, target_sparsity=0.9)
  assert got == pytest.approx(0.5 + 0.4)


@pytest.mark.parametrize('cls,kwargs', [
    (reward.TargetPenaltyReward, {'accuracy_weight': -1.0}),
    (reward.TargetPenaltyReward, {'allowed_drop': 1.0}),
    (reward.AccuracySparsityReward, {'sparsity_weight': -0.1}),
])
def testBadArguments_RaiseValueError(cls, kwargs):
  with pytest.raises(ValueError):
    cls(**kwargs)


@pytest.mark.parametrize('cls', [reward.TargetPenaltyReward,
                                 reward.AccuracySparsityReward])
def testConfigRoundTrip(cls):
  r = cls()
  assert cls.from_config(r.get_config()).get_config() == r.get_config()


def testFromConfig_PicksByNameAndRejectsUnknown():
  config = ml_collections.ConfigDict({'name': 'accuracy_sparsity',
                                      'sparsity_weight': 0.3})
  r = reward.from_config(config)
  assert isinstance(r, reward.AccuracySparsityReward) and r.sparsity_weight == 0.3
  config.name = 'bogus'
  with pytest.raises(ValueError, match='unknown reward'):
    reward.from_config(config)
