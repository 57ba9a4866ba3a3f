"""Tests for purl_tf.finalists: the finalists get the final fine-tune itself,
the chosen net is exported as it is, and a resumed search does not fine-tune
a scored finalist again."""

import json
import os
from unittest import mock

import numpy as np
import pytest

from purl_tf import experiment, finalists, keras_api, report, rerank
from purl_tf import search_loop
from purl_tf import search_run
from tests.conftest import tiny_search_config


def _cand(episode, demo, reference='lamp'):
  return {'episode': episode, 'demo': demo, 'reference': reference}


def testPickFinalists_NoMoreCandidatesThanN_AllOfThemInEpisodeOrder():
  cands = [_cand(2, False), _cand(0, True), _cand(1, True, 'erk')]
  picked = finalists.pick_finalists(cands, {}, 3)
  assert [c['episode'] for c in picked] == [0, 1, 2]


def testPickFinalists_MoreCandidates_TheNBestReRankingScores():
  cands = [_cand(0, True), _cand(1, True, 'erk'), _cand(4, False),
           _cand(6, False)]
  scores = {'0': 0.70, '1': 0.75, '4': 0.72, '6': 0.60}
  picked = finalists.pick_finalists(cands, scores, 2)
  assert [c['episode'] for c in picked] == [1, 4]


def _config(tmp_path, finalists_n, episodes=4):
  config = tiny_search_config()
  config.data.update(train_size=512, reward_size=256, test_size=256,
                     batch_size=32)
  config.train.epochs = 1
  config.finetune.epochs = 1
  config.train.cache_dir = str(tmp_path / 'dense_cache')
  config.search.episodes = episodes
  config.search.finalists = finalists_n
  config.search.finalist_z = 0.0
  config.prune.sparsity = 0.8
  return config


def _state(workdir):
  with open(os.path.join(workdir, 'search_state.json')) as f:
    return json.load(f)


@pytest.fixture(scope='module')
def searched(tmp_path_factory):
  """A finished search with 2 finalists among 4 candidates (3 demonstrations
  and 1 agent episode), and its config."""
  tmp_path = tmp_path_factory.mktemp('finalists')
  config = _config(tmp_path, 2)
  workdir = str(tmp_path / 'run')
  summary = search_run.run_search(config, workdir, verbose=0)
  return config, workdir, summary


def testFinalists_TheBestReRankedAreFineTunedAndTheBestScoreIsChosen(searched):
  _, workdir, summary = searched
  state = _state(workdir)
  assert len(state['candidates']) == 4
  # The short re-ranking ran and chose the two finalists.
  assert len(state['reranked']) == 4
  top2 = sorted(state['reranked'], key=lambda k: -state['reranked'][k])[:2]
  assert sorted(state['finalists']) == sorted(top2)
  chosen = str(state['best']['episode'])
  assert state['finalists'][chosen] == max(state['finalists'].values())
  assert summary['search']['finalists'] == state['finalists']
  assert state['finalists_s'] > 0


def testFinalists_ExportedNetIsTheChosenAllocationsFineTuneUnchanged(
    searched, tmp_path):
  config, _, summary = searched
  # A fresh run of the final fine-tune on the same (cached) dense net.
  ctx = experiment.prepare(config, str(tmp_path), verbose=0)
  again = experiment.finish(ctx, summary['allocation'], target=0.8,
                            method='check', verbose=0)
  assert again['weights_sha256'] == summary['weights_sha256']
  assert again['pruned_test_accuracy'] == summary['pruned_test_accuracy']


def testFinish_FineTunedNetOfAnotherAllocation_IsRefused(searched, tmp_path):
  config, _, summary = searched
  ctx = experiment.prepare(config, str(tmp_path), verbose=0)
  ft = experiment.final_finetune(ctx, summary['allocation'], method='x',
                                 target=0.8, verbose=0)
  other = {k: v / 2 for k, v in summary['allocation'].items()}
  with pytest.raises(ValueError, match='another allocation'):
    experiment.finish(ctx, other, target=0.8, method='x', verbose=0,
                      finetuned=ft)


def testResumedFinalists_OnlyTheUnscoredAreFineTunedAgain_SameResult(
    tmp_path):
  config = _config(tmp_path, 4)  # every candidate is a finalist
  config.search.finalist_score = 'loss'
  first = str(tmp_path / 'first')
  summary = search_run.run_search(config, first, verbose=0)
  state = _state(first)
  # No short re-ranking when every candidate is a finalist.
  assert state['reranked'] == {}
  assert len(state['finalists']) == 4
  assert len(state['finalists_loss_examples']) == 4
  chosen = str(state['best']['episode'])
  assert state['best']['finalist_loss'] == min(state['finalists_loss'].values())
  # As if killed during the last finalist's fine-tune.
  dropped = max(k for k in state['finalists'] if k != chosen)
  for part in ('finalists', 'finalists_correct', 'finalists_loss',
               'finalists_loss_examples'):
    del state[part][dropped]
  # And one scored before the loss was kept: the choice needs it again.
  old = min(k for k in state['finalists'] if k not in (chosen, dropped))
  del state['finalists_loss'][old]
  del state['finalists_loss_examples'][old]
  with open(os.path.join(first, 'search_state.json'), 'w') as f:
    json.dump(state, f)
  calls = []
  real = experiment.final_finetune

  def counting(ctx, sparsity_map, **kw):
    calls.append(kw['method'])
    return real(ctx, sparsity_map, **kw)

  with mock.patch.object(experiment, 'final_finetune', counting):
    again = search_run.run_search(config, first, resume=True, verbose=0)
  # The dropped finalist and the one without a loss, then the chosen one
  # again (scored before the restart; deterministic, so the same net).
  assert len(calls) == 3
  assert again['weights_sha256'] == summary['weights_sha256']
  assert _state(first)['finalists'] == summary['search']['finalists']
  assert _state(first)['finalists_loss'] == summary['search']['finalists_loss']


def testNoEpisodes_TheReferencesAreTheFinalists_SameChoiceAsPlayingThem(
    tmp_path, capsys):
  # Three references, each played as a demonstration episode or not played.
  played = _config(tmp_path, 3, episodes=3)
  played.search.finalist_score = 'loss'
  unplayed = played.copy_and_resolve_references()
  unplayed.search.episodes = 0
  with_episodes = search_run.run_search(played, str(tmp_path / 'played'),
                                        verbose=0)
  assert 'demonstration (of 3 finalists)' in capsys.readouterr().out
  workdir = str(tmp_path / 'unplayed')
  without = search_run.run_search(unplayed, workdir, verbose=0)
  # Named as what they were: references, never played.
  out = capsys.readouterr().out
  assert 'reference (of 3 finalists)' in out and 'demonstration' not in out
  state = _state(workdir)
  assert state['episode'] == 0 and state['env_steps'] == 0
  assert not os.path.exists(os.path.join(workdir, 'episodes.jsonl'))
  assert [c['reference'] for c in state['candidates']] == [
      'lamp', 'erk', 'global_magnitude']
  # The episodes changed nothing the choice reads: the same finalists'
  # scores, the same chosen net.
  assert without['search']['finalists_loss'] == (
      with_episodes['search']['finalists_loss'])
  assert without['allocation'] == with_episodes['allocation']
  assert without['weights_sha256'] == with_episodes['weights_sha256']
  assert without['search']['episodes'] == 0
  # Resumed after the finalists were scored: nothing is searched, the
  # chosen net is fine-tuned again and comes out the same.
  again = search_run.run_search(unplayed, workdir, resume=True, verbose=0)
  assert again['weights_sha256'] == without['weights_sha256']
  # purl-report draws a run without episodes (no search curve).
  md = report.render([workdir], str(tmp_path / 'report'))
  with open(md) as f:
    text = f.read()
  assert '| purl |' in text and 'episodes, best from' not in text


def testNoEpisodes_FewerFinalistsThanReferences_IsRefused():
  config = tiny_search_config()
  config.search.episodes = 0
  config.search.references = 'lamp,erk'
  config.search.finalists = 1
  with pytest.raises(ValueError, match=r'search.finalists at least their '
                     r'number \(2\)'):
    search_loop.check_config(config)
  config.search.finalists = 2
  search_loop.check_config(config)


def testApiSearchWithFinalists_IsRefusedBeforeAnyWork():
  config = tiny_search_config()
  config.search.finalists = 2
  with pytest.raises(ValueError, match='finalists = 0'):
    keras_api.search(None, None, None, config)
  # A config without episodes is told it needs some, in the same message.
  config.search.episodes = 0
  config.search.finalists = 3
  with pytest.raises(ValueError, match=r'finalists = 0 and '
                     r'config.search.episodes > 0'):
    keras_api.search(None, None, None, config)


def testNegativeFinalists_IsRefused():
  config = tiny_search_config()
  config.search.finalists = -1
  with pytest.raises(ValueError, match='search.finalists must be >= 0'):
    search_loop.check_config(config)


def testFinalistsWithoutReRanking_IsRefused():
  config = tiny_search_config()
  config.search.finalists = 2
  config.search.rerank = 0
  with pytest.raises(ValueError, match='needs search.rerank >= 1'):
    search_loop.check_config(config)


def testFinalists_FollowTheSearchsConfig_NotTheContexts(tmp_path):
  # The benchmark searches with a variant of the net's config.
  config = _config(tmp_path, 0, episodes=3)
  ctx = experiment.prepare(config, str(tmp_path / 'ctx'), verbose=0)
  variant = config.copy_and_resolve_references()
  variant.search.finalists = 3
  env = search_loop.build_env(ctx.dense, ctx.splits.search_train,
                              ctx.splits.reward, variant, ctx.strategy)
  loop = search_loop.SearchLoop(env, variant, workdir=None, verbose=False)
  loop.run()
  finetuned = finalists.run(ctx, loop, verbose=False)
  assert finetuned is not None
  assert len(loop.state.finalists) == 3
  assert finetuned.sparsity_map == loop.allocation_of(loop.state.best)


def _scored_state(scores):
  """A SearchState whose finalists 0 (lamp), 1 (erk) and 5 (an agent
  episode) have the given per-example (correct, loss) vectors."""
  state = search_loop.SearchState()
  for key, (correct, loss) in scores.items():
    state.finalists[key] = float(np.mean(correct))
    state.finalists_correct[key] = rerank.pack_correct(correct)
    state.finalists_loss[key] = float(np.mean(loss))
    state.finalists_loss_examples[key] = rerank.pack_floats(loss)
  return state


def _search_config(score, incumbent='best', z=2.0):
  config = tiny_search_config()
  config.search.finalist_score = score
  config.search.rerank_incumbent = incumbent
  config.search.finalist_z = z
  return config.search


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
  best = finalists.choose(_FINALISTS, state, _search_config('accuracy'))
  assert best['episode'] == 1


def testChooseByLoss_TheLowestCrossEntropy_AnAgentEpisodeBeyondZ():
  state = _scored_state({'0': _LAMP, '1': _ERK, '5': _AGENT})
  # The agent's episode has the lowest loss, lower than lamp's on every
  # example: far beyond 2 paired standard errors.
  best = finalists.choose(_FINALISTS, state, _search_config('loss'))
  assert best['episode'] == 5


def testChooseByLossFirst_HoldsTheFirstDemonstrationUnlessBeatenByZ():
  # Without the agent: erk's loss is higher, so lamp is held.
  state = _scored_state({'0': _LAMP, '1': _ERK})
  best = finalists.choose(_FINALISTS[:2], state,
                          _search_config('loss', 'first'))
  assert best['episode'] == 0
  # By accuracy erk leads by 3 examples of 400, 1.7 paired SE.
  best = finalists.choose(_FINALISTS[:2], state,
                          _search_config('accuracy', 'first'))
  assert best['episode'] == 0
  best = finalists.choose(_FINALISTS[:2], state,
                          _search_config('accuracy', 'first', z=1.0))
  assert best['episode'] == 1


def testUnknownFinalistScore_IsRefused():
  config = tiny_search_config()
  config.search.finalist_score = 'f1'
  with pytest.raises(ValueError, match='search.finalist_score must be one of'):
    search_loop.check_config(config)
