"""The re-ranking's choice among a search's candidates, and its parts.

Pure functions on correctness vectors built here (seeded numpy).
"""

import math

import numpy as np
import pytest

from purl_tf import rerank


def testDrawSeed_CandidateOrdersDiffer_CommonDrawsDiffer_OldSeedKept():
  seed = rerank.draw_seed
  assert seed(3, 5) == 3 * 100_003 + 50_005  # what earlier searches used
  orders = {seed(3, e, d) for e in (0, 1, 2) for d in (0, 1)}
  orders |= {seed(3, None, d) for d in (0, 1, 2)}
  assert len(orders) == 9


def _cand(episode, demo):
  return {'episode': episode, 'demo': demo}


def testChoose_EpisodeWithinNoise_KeepsTheBestDemonstration():
  rng = np.random.RandomState(0)
  demo = rng.rand(5000) < 0.88
  episode = demo.copy()
  # They disagree on 300 examples, the episode right on 158 of them:
  # +0.32 pt, about one standard error of the paired difference.
  idx = rng.choice(5000, 300, replace=False)
  demo[idx[:158]], episode[idx[:158]] = False, True
  demo[idx[158:]], episode[idx[158:]] = True, False
  acc = {'0': demo.mean(), '1': 0.80, '5': episode.mean()}
  assert acc['5'] > acc['0']
  correct = {'0': demo, '5': episode}
  cands = [_cand(0, True), _cand(1, True), _cand(5, False)]
  z = rerank.paired_z(episode, demo)
  assert 0 < z < 2
  assert rerank.choose(cands, acc, correct, 2.0)['episode'] == 0
  assert rerank.choose(cands, acc, correct, 0.0)['episode'] == 5


def testChoose_EpisodeClearlyBetter_ReplacesTheDemonstration():
  demo = np.zeros(1000, bool)
  demo[:800] = True
  episode = demo.copy()
  episode[800:850] = True  # +5 pt, never worse
  acc = {'0': demo.mean(), '3': episode.mean()}
  cands = [_cand(0, True), _cand(3, False)]
  assert rerank.paired_z(episode, demo) > 7
  assert rerank.choose(
      cands, acc, {'0': demo, '3': episode}, 2.0)['episode'] == 3


def _disagreeing(n_diff, challenger_right, n=5000, seed=0):
  """Two correctness vectors that disagree on `n_diff` examples, the
  challenger right on `challenger_right` of them."""
  rng = np.random.RandomState(seed)
  first = rng.rand(n) < 0.85
  other = first.copy()
  idx = rng.choice(n, n_diff, replace=False)
  first[idx[:challenger_right]], other[idx[:challenger_right]] = False, True
  first[idx[challenger_right:]], other[idx[challenger_right:]] = True, False
  return first, other


def testChoose_FirstIncumbent_ADemonstrationWithinNoiseDoesNotDisplaceIt():
  # ERK scores +0.32 pt over LAMP on the reward split, about one standard
  # error: 'best' takes ERK, 'first' keeps LAMP (the first reference).
  lamp, erk = _disagreeing(300, 158)
  acc = {'0': lamp.mean(), '1': erk.mean()}
  correct = {'0': lamp, '1': erk}
  cands = [_cand(0, True), _cand(1, True)]
  assert 0 < rerank.paired_z(erk, lamp) < 2
  assert rerank.choose(cands, acc, correct, 2.0)['episode'] == 1
  assert rerank.choose(cands, acc, correct, 2.0, 'first')['episode'] == 0
  assert rerank.choose(cands, acc, correct, 0.0, 'first')['episode'] == 1


def testChoose_FirstIncumbent_ClearWinnersCompeteOnScore():
  # Demonstration 1 (+3 pt) and episode 5 (+4 pt) both beat demonstration 0
  # by far more than 2 standard errors: the higher score wins.
  first = np.zeros(1000, bool)
  first[:800] = True
  demo, episode = first.copy(), first.copy()
  demo[800:830] = True
  episode[800:840] = True
  acc = {'0': first.mean(), '1': demo.mean(), '5': episode.mean()}
  assert acc['5'] > acc['1'] > acc['0']
  correct = {'0': first, '1': demo, '5': episode}
  cands = [_cand(0, True), _cand(1, True), _cand(5, False)]
  assert rerank.choose(cands, acc, correct, 2.0, 'first')['episode'] == 5
  with pytest.raises(ValueError, match='incumbent'):
    rerank.choose(cands, acc, correct, 2.0, 'last')


def testChoose_NoDemonstrations_BestScore():
  acc = {'2': 0.5, '4': 0.6}
  cands = [_cand(2, False), _cand(4, False)]
  assert rerank.choose(cands, acc, {}, 2.0)['episode'] == 4


def testPackCorrect_RoundTrips():
  v = np.random.RandomState(1).rand(37) < 0.5
  assert (rerank.unpack_correct(rerank.pack_correct(v)) == v).all()


def testPairedZ_EqualOrIdentical_IsZero_AllBetterEverywhere_IsInfinite():
  a = np.array([True, False, True])
  assert rerank.paired_z(a, a) == 0.0
  assert rerank.paired_z(np.ones(4, bool), np.zeros(4, bool)) == math.inf


def testPackFloats_RoundTripsToThreeSignificantDigits():
  rng = np.random.RandomState(1)
  loss = rng.exponential(0.4, size=1001)
  back = rerank.unpack_floats(rerank.pack_floats(loss))
  assert back.shape == loss.shape
  np.testing.assert_allclose(back, loss, rtol=1e-3, atol=1e-6)


def testPerExample_CorrectAndLossMatchKeras_InDatasetOrder():
  # Imported here: the rest of this file needs no TensorFlow.
  from purl_tf import train  # pylint: disable=g-import-not-at-top
  from purl_tf.compat import keras, tf  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(0)
  model = keras.Sequential([keras.layers.Input((6,)),
                            keras.layers.Dense(4, activation='softmax')])
  rng = np.random.RandomState(0)
  x = rng.randn(50, 6).astype('float32')
  y = rng.randint(0, 4, size=50)
  ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
  correct, loss = train.per_example(model, ds)
  probs = model.predict(x, verbose=0)
  np.testing.assert_array_equal(correct, probs.argmax(-1) == y)
  expected = keras.losses.sparse_categorical_crossentropy(y, probs).numpy()
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  np.testing.assert_array_equal(train.correct_predictions(model, ds), correct)
  first, _ = train.per_example(model, ds, steps=1)
  assert len(first) == 16
