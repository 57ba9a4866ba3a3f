"""The selection stage's choice among a search's candidates, and its parts.

Pure functions on correctness vectors built here (seeded numpy).
"""

import math

import numpy as np
import pytest

from purl_tf import search_loop, selection
from tests.conftest import tiny_search_config


def testShortSeed_EachCandidateItsOwnOrder_AsEarlierSearches():
  assert selection.short_seed(3, 5) == 3 * 100_003 + 50_005
  assert len({selection.short_seed(3, e) for e in range(10)}) == 10


def _cand(episode, demo, reference='lamp'):
  return {'episode': episode, 'demo': demo, 'reference': reference}


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
  z = selection.paired_z(episode, demo)
  assert 0 < z < 2
  assert selection.choose(cands, acc, correct, z=2.0)['episode'] == 0
  assert selection.choose(cands, acc, correct, z=0.0)['episode'] == 5


def testChoose_EpisodeClearlyBetter_ReplacesTheDemonstration():
  demo = np.zeros(1000, bool)
  demo[:800] = True
  episode = demo.copy()
  episode[800:850] = True  # +5 pt, never worse
  acc = {'0': demo.mean(), '3': episode.mean()}
  cands = [_cand(0, True), _cand(3, False)]
  assert selection.paired_z(episode, demo) > 7
  assert selection.choose(
      cands, acc, {'0': demo, '3': episode}, z=2.0)['episode'] == 3


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
  assert 0 < selection.paired_z(erk, lamp) < 2
  assert selection.choose(cands, acc, correct, z=2.0)['episode'] == 1
  assert selection.choose(cands, acc, correct, 'first', z=2.0)['episode'] == 0
  assert selection.choose(cands, acc, correct, 'first', z=0.0)['episode'] == 1


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
  assert selection.choose(cands, acc, correct, 'first', z=2.0)['episode'] == 5
  with pytest.raises(ValueError, match='incumbent'):
    selection.choose(cands, acc, correct, 'last', z=2.0)


def testChoose_NoDemonstrations_BestScore():
  acc = {'2': 0.5, '4': 0.6}
  cands = [_cand(2, False), _cand(4, False)]
  assert selection.choose(cands, acc, {}, z=2.0)['episode'] == 4


def testPackCorrect_RoundTrips():
  v = np.random.RandomState(1).rand(37) < 0.5
  assert (selection.unpack_correct(selection.pack_correct(v)) == v).all()


def testPairedZ_EqualOrIdentical_IsZero_AllBetterEverywhere_IsInfinite():
  a = np.array([True, False, True])
  assert selection.paired_z(a, a) == 0.0
  assert selection.paired_z(np.ones(4, bool), np.zeros(4, bool)) == math.inf


def testPackFloats_RoundTripsToThreeSignificantDigits():
  rng = np.random.RandomState(1)
  loss = rng.exponential(0.4, size=1001)
  back = selection.unpack_floats(selection.pack_floats(loss))
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


def testTop_NoMoreCandidatesThanN_AllOfThemInEpisodeOrder():
  cands = [_cand(2, False), _cand(0, True), _cand(1, True, 'erk')]
  picked = selection.top(cands, {}, 3)
  assert [c['episode'] for c in picked] == [0, 1, 2]


def testTop_MoreCandidates_TheNBestReRankingScores():
  cands = [_cand(0, True), _cand(1, True, 'erk'), _cand(4, False),
           _cand(6, False)]
  scores = {'0': 0.70, '1': 0.75, '4': 0.72, '6': 0.60}
  picked = selection.top(cands, scores, 2)
  assert [c['episode'] for c in picked] == [1, 4]


def _scored_state(scores):
  """A SearchState whose finalists 0 (lamp), 1 (erk) and 5 (an agent
  episode) have the given per-example (correct, loss) vectors."""
  state = search_loop.SearchState()
  for key, (correct, loss) in scores.items():
    state.finalists[key] = float(np.mean(correct))
    state.finalists_correct[key] = selection.pack_correct(correct)
    state.finalists_loss[key] = float(np.mean(loss))
    state.finalists_loss_examples[key] = selection.pack_floats(loss)
  return state


def _choose(finalists, state, score, incumbent='best', z=2.0):
  return selection.choose(finalists, *selection.final_scores(state, score),
                          incumbent, z=z)


# 400 reward examples, fixed: erk is right on 3 examples more than lamp but
# unsure where lamp is sure; the agent's episode is right where lamp is and
# surer everywhere.
_I = np.arange(400)
_LAMP = (_I < 360, np.where(_I < 360, 0.10, 2.0))
_ERK = (_I < 363, np.where(_I < 363, 0.40, 2.0))
_AGENT = (_I < 360, np.where(_I < 360, 0.05, 1.9))
_FINALISTS = [_cand(0, True), _cand(1, True, 'erk'), _cand(5, False)]


def testChooseByAccuracy_TheBestAccuracyAmongDemonstrations():
  state = _scored_state({'0': _LAMP, '1': _ERK, '5': _AGENT})
  best = _choose(_FINALISTS, state, 'accuracy')
  assert best['episode'] == 1


def testChooseByLoss_TheLowestCrossEntropy_AnAgentEpisodeBeyondZ():
  state = _scored_state({'0': _LAMP, '1': _ERK, '5': _AGENT})
  # The agent's episode has the lowest loss, lower than lamp's on every
  # example: far beyond 2 paired standard errors.
  best = _choose(_FINALISTS, state, 'loss')
  assert best['episode'] == 5


def testChooseByLossFirst_HoldsTheFirstDemonstrationUnlessBeatenByZ():
  # Without the agent: erk's loss is higher, so lamp is held.
  state = _scored_state({'0': _LAMP, '1': _ERK})
  best = _choose(_FINALISTS[:2], state, 'loss', 'first')
  assert best['episode'] == 0
  # By accuracy erk leads by 3 examples of 400, 1.7 paired SE.
  best = _choose(_FINALISTS[:2], state, 'accuracy', 'first')
  assert best['episode'] == 0
  best = _choose(_FINALISTS[:2], state, 'accuracy', 'first', z=1.0)
  assert best['episode'] == 1


@pytest.mark.parametrize('key,value', [
    ('score', 'f1'), ('incumbent', 'last'), ('episode_score', 'luck')])
def testCheckConfig_UnknownChoiceRule_IsRefused(key, value):
  config = tiny_search_config()
  config.select[key] = value
  with pytest.raises(ValueError, match=f'select.{key} must be one of'):
    search_loop.check_config(config)


@pytest.mark.parametrize('key,value,match', [
    ('finalists', -1, 'select.finalists must be >= 0'),
    ('top_episodes', -1, 'select.top_episodes must be >= 0'),
    ('short_steps', 5, 'select.short_steps must be 0 or >= 15'),
])
def testCheckConfig_BadStageSizes_AreRefused(key, value, match):
  config = tiny_search_config()
  config.select[key] = value
  with pytest.raises(ValueError, match=match):
    search_loop.check_config(config)


def testCheckConfig_SeveralCandidatesAndNothingToScoreThem_IsRefused():
  config = tiny_search_config()
  config.select.update(short_steps=0, finalists=0)
  with pytest.raises(ValueError, match='nothing to score them'):
    search_loop.check_config(config)
  # One reference and no agent episode: nothing to choose, nothing to score.
  config.search.references = 'lamp'
  config.select.top_episodes = 0
  search_loop.check_config(config)
