"""Build -> search -> select end to end (purl_tf/pipeline.py, through
purl-search's `run_search`): the short round narrows the candidates, the
finalists get the final fine-tune itself, the chosen net is exported as it
is, and a resumed search does not fine-tune a scored finalist again."""

import json
import os
from unittest import mock

import pytest

from purl_tf import experiment, keras_api, pipeline, report, search_loop
from purl_tf import search_run, selection
from purl_tf.search_loop import SearchState
from tests.conftest import tiny_search_config


def _config(tmp_path, finalists_n, episodes=4):
  config = tiny_search_config()
  config.data.update(train_size=512, reward_size=256, test_size=256,
                     batch_size=32)
  config.train.epochs = 1
  config.finetune.epochs = 1
  config.train.cache_dir = str(tmp_path / 'dense_cache')
  config.search.episodes = episodes
  config.select.finalists = finalists_n
  config.prune.sparsity = 0.8
  return config


def _state(workdir):
  with open(os.path.join(workdir, 'search_state.json')) as f:
    return json.load(f)


def _chosen_by_rule(state, finalists, score):
  """What `selection.choose` picks from a state file's final round, with the
  default config's incumbent ('best')."""
  by_key = {str(c['episode']): c for c in state['candidates']}
  return selection.choose([by_key[k] for k in finalists],
                          *selection.final_scores(SearchState(**state), score))


@pytest.fixture(scope='module')
def searched(tmp_path_factory):
  """A finished search with 2 finalists among 4 candidates (3 demonstrations
  and 1 agent episode), and its config."""
  tmp_path = tmp_path_factory.mktemp('finalists')
  config = _config(tmp_path, 2)
  workdir = str(tmp_path / 'run')
  summary = search_run.run_search(config, workdir, verbose=0)
  return config, workdir, summary


def testFinalists_TheBestShortScoresAreFineTunedAndTheRuleChooses(searched):
  _, workdir, summary = searched
  state = _state(workdir)
  assert len(state['candidates']) == 4
  # The short round ran and chose the two finalists.
  assert len(state['short']) == 4
  top2 = sorted(state['short'], key=lambda k: -state['short'][k])[:2]
  assert sorted(state['finalists']) == sorted(top2)
  chosen = _chosen_by_rule(state, sorted(state['finalists'], key=int),
                           'accuracy')
  assert state['best']['episode'] == chosen['episode']
  assert state['best']['finalist_accuracy'] == state['finalists'][
      str(chosen['episode'])]
  assert summary['search']['finalists'] == state['finalists']
  assert summary['search']['chosen'] == search_run.describe(
      SearchState(**state))
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
  config.select.score = 'loss'
  first = str(tmp_path / 'first')
  summary = search_run.run_search(config, first, verbose=0)
  state = _state(first)
  # No short round when every candidate is a finalist.
  assert state['short'] == {}
  assert len(state['finalists']) == 4
  assert len(state['finalists_loss_examples']) == 4
  chosen = str(state['best']['episode'])
  assert int(chosen) == _chosen_by_rule(
      state, sorted(state['finalists'], key=int), 'loss')['episode']
  assert state['best']['finalist_loss'] == state['finalists_loss'][chosen]
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
  played.select.score = 'loss'
  unplayed = played.copy_and_resolve_references()
  unplayed.search.episodes = 0
  with_episodes = search_run.run_search(played, str(tmp_path / 'played'),
                                        verbose=0)
  out = capsys.readouterr().out
  assert 'reference (of 3 finalists)' in out and 'unplayed' not in out
  workdir = str(tmp_path / 'unplayed')
  without = search_run.run_search(unplayed, workdir, verbose=0)
  # Named as what they were: references, never played.
  out = capsys.readouterr().out
  assert 'reference (unplayed) (of 3 finalists)' in out
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
  config.select.finalists = 1
  with pytest.raises(ValueError, match=r'select.finalists at least their '
                     r'number \(2\)'):
    search_loop.check_config(config)
  config.select.finalists = 2
  search_loop.check_config(config)


def testApiSearchWithFinalists_IsRefusedBeforeAnyWork():
  config = tiny_search_config()
  config.select.finalists = 2
  with pytest.raises(ValueError, match='finalists = 0'):
    keras_api.search(None, None, None, config)
  # A config without episodes is told it needs some, in the same message.
  config.search.episodes = 0
  config.select.finalists = 3
  with pytest.raises(ValueError, match=r'finalists = 0 and '
                     r'config.search.episodes > 0'):
    keras_api.search(None, None, None, config)


def testFinalists_FollowTheSearchsConfig_NotTheContexts(tmp_path):
  # The benchmark searches with a variant of the net's config.
  config = _config(tmp_path, 0, episodes=3)
  ctx = experiment.prepare(config, str(tmp_path / 'ctx'), verbose=0)
  variant = config.copy_and_resolve_references()
  variant.select.finalists = 3
  result = pipeline.search_in(ctx, variant, verbose=False)
  assert result.finetuned is not None
  assert len(result.state.finalists) == 3
  assert result.finetuned.sparsity_map == result.policy.sparsity
  assert result.policy.sparsity == result.loop.allocation_of(
      result.state.best)
