"""The search loop on the benchmark CNN: the reference episodes, the
reference they choose, the best-episode rule and the selection stage.

Seeded by conftest (numpy, Python, TensorFlow) and the config's seed.
"""

import errno
import os
from unittest import mock

import numpy as np
import pytest

from purl_tf import (allocation, config_defaults, io_utils, models, pipeline,
                     pruning, search_loop, selection, train)
from purl_tf.compat import keras
from tests.conftest import tiny_search_config


def _config(references='lamp,erk', episodes=4, **select):
  config = tiny_search_config()
  config.prune.sparsity = 0.8
  config.search.references = references
  config.search.episodes = episodes
  config.search.greedy_every = 0
  config.select.update(select)
  return config


@pytest.fixture(scope='module')
def dense(splits):
  keras.utils.set_random_seed(0)
  model = models.fmnist_cnn()
  train.compile_model(model, 1e-3)
  train.fine_tune(model, splits.train, epochs=1, steps=4)
  return model


def _run(dense, splits, config):
  env = search_loop.build_env(dense, splits.train, splits.reward, config)
  loop = search_loop.SearchLoop(env, config, verbose=False)
  loop.run()
  return env, loop


def testDemonstrations_PlayEachReferenceFirstThenScaleTheBest(dense, splits):
  env, loop = _run(dense, splits, _config())
  first, second, *rest = loop.records
  assert [first['reference'], second['reference']] == ['lamp', 'erk']
  assert first['demo'] and second['demo'] and not any(r['demo'] for r in rest)
  # A demonstration is its allocation itself (all neutral actions).
  want = allocation.fit_to_target(env.infos, allocation.lamp(dense, 0.8), 0.8)
  assert first['actions'] == [env.neutral_action] * env.num_layers
  assert first['sparsity'] == pytest.approx([want[n] for n in loop.names])
  best = max(('lamp', 'erk'), key=lambda n: loop.state.demos[n])
  assert all(r['reference'] == best for r in rest)
  # Every episode meets the target exactly, and all went to the replay buffer.
  assert all(r['global_sparsity'] == pytest.approx(0.8) for r in loop.records)
  assert int(loop.learner.replay.num_frames()) == 4 * env.num_layers


def testFixedReference_IsScaledWhateverTheDemonstrationsScore(dense, splits):
  config = _config(episodes=3)
  config.env.reference = 'uniform'
  _, loop = _run(dense, splits, config)
  assert loop.records[-1]['reference'] == 'uniform'


@pytest.mark.parametrize('score', ['final_accuracy', 'return'])
def testBestEpisode_IsTheBestScoreAmongThoseMeetingTheBudget(dense, splits,
                                                             score):
  config = _config(episode_score=score)  # the loop alone: no selection
  if score == 'return':
    config_defaults.paper_faithful(config)
    config.env.grid = (0.0, 0.9, 0.05)
  _, loop = _run(dense, splits, config)
  eligible = [r for r in loop.records
              if r['global_sparsity'] >= 0.8 - 0.005 and not r['diverged']]
  want = max(eligible, key=lambda r: r[score])
  assert loop.state.best['episode'] == want['episode']
  policy = loop.policy(dense)
  assert policy.metrics['episode_score'] == score
  assert policy.metrics['reward_accuracy'] == want['final_accuracy']


def testReferenceResult_IsTheFreeAllocationExactly(dense, splits):
  # One reference and nothing else: the result is that reference.
  config = _config(references='lamp', episodes=1)
  env, loop = _run(dense, splits, config)
  free = allocation.lamp(dense, 0.8)
  chosen = loop.policy(dense).sparsity
  fitted = allocation.fit_to_target(
      env.infos, dict(zip(loop.names, loop.records[0]['sparsity'])), 0.8)
  # The episode's sparsities went through the clamp and the refit: close to
  # the free allocation's, not equal.
  assert fitted != free
  assert [fitted[n] for n in loop.names] == pytest.approx(
      [free[n] for n in loop.names], abs=1e-4)
  # Bit for bit what `purl-prune --allocation=lamp` prunes.
  assert chosen == free
  assert pruning.global_sparsity(env.infos, chosen) == pytest.approx(
      0.8, abs=1e-4)


def testBlendDemonstration_ReturnedExactly(dense, splits):
  config = _config(references='lamp+erk', episodes=1)
  env, loop = _run(dense, splits, config)
  assert loop.records[0]['demo']
  chosen = loop.policy(dense).sparsity
  assert chosen == allocation.allocate('lamp+erk', dense, 0.8)
  assert chosen != allocation.lamp(dense, 0.8)
  assert pruning.global_sparsity(env.infos, chosen) == pytest.approx(
      0.8, abs=1e-9)


def testAgentEpisode_KeepsItsOwnAllocationFittedToTheTarget(dense, splits):
  config = _config(references='lamp', episodes=2)
  env, loop = _run(dense, splits, config)
  agent = loop.records[1]
  assert loop.allocation_of(agent) == allocation.fit_to_target(
      env.infos, dict(zip(loop.names, agent['sparsity'])), 0.8)


def testSensitivityDemonstration_ScannedOnceByTheSearch_KeptOnResume(
    dense, splits, tmp_path):
  grid = (0.0, 0.5, 0.9)
  config = _config(references='sensitivity,lamp', episodes=2)
  env = search_loop.build_env(dense, splits.train, splits.reward, config)
  loop = search_loop.SearchLoop(env, config, str(tmp_path), verbose=False)
  with mock.patch.object(allocation, 'SENSITIVITY_GRID', grid):  # CI time
    loop.run()
  first = loop.records[0]
  assert first['demo'] and first['reference'] == 'sensitivity'
  # The allocation the search's own scan picks (the scan is deterministic:
  # the same cached batches re-estimate statistics for every measurement).
  want = allocation.pick_by_sensitivity(env.infos, env.sensitivity_scan(grid),
                                        0.8)
  assert loop.demos['sensitivity'] == want
  assert loop.state.scanned == {'sensitivity': want}
  assert first['sparsity'] == pytest.approx([want[n] for n in loop.names],
                                            abs=1e-4)
  # A resumed search takes the scanned allocation from its state.
  again = search_loop.SearchLoop(env, config, str(tmp_path), verbose=False)
  assert again.restore()
  assert again.demos['sensitivity'] == want
  with mock.patch.object(env, 'sensitivity_scan',
                         side_effect=AssertionError('scanned again')):
    again.run()
  # What the resumed search returns for the demonstration is the scanned
  # allocation itself.
  assert again.allocation_of(dict(first)) == want


@pytest.mark.parametrize('target', [0.0, 0.99])
def testSensitivityDemonstration_MeetsExtremeTargetsExactly(dense, splits,
                                                            target):
  # A grid topping out at 0.9 gets a value above 0.99 added for the knapsack.
  config = _config(references='sensitivity', episodes=1)
  config.prune.sparsity = target
  with mock.patch.object(allocation, 'SENSITIVITY_GRID', (0.0, 0.5, 0.9)):
    env, loop = _run(dense, splits, config)
  chosen = loop.policy(dense).sparsity
  assert chosen == loop.demos['sensitivity']
  assert pruning.global_sparsity(env.infos, chosen) == pytest.approx(
      target, abs=1e-6)
  assert loop.records[0]['global_sparsity'] == pytest.approx(target, abs=1e-6)


def testSensitivityReference_NotPlayed_IsNotScanned(dense, splits):
  # Listed third with a 2-episode budget: never played, so never measured.
  config = _config(references='lamp,erk,sensitivity', episodes=2)
  env = search_loop.build_env(dense, splits.train, splits.reward, config)
  loop = search_loop.SearchLoop(env, config, verbose=False)
  with mock.patch.object(env, 'sensitivity_scan',
                         side_effect=AssertionError('scanned')):
    loop.run()
  assert loop.state.scanned == {}


def testFinalEvaluation_TheWholeRewardSplit(dense, splits):
  # The reward split holds 8 batches of 32: the last step sees all of them,
  # the others 2, so the last accuracy is a multiple of 1/256.
  _, loop = _run(dense, splits, _config(references='lamp', episodes=1))
  final = loop.records[0]['final_accuracy']
  assert final * 256 == pytest.approx(round(final * 256), abs=1e-6)
  assert all(a * 64 == pytest.approx(round(a * 64), abs=1e-6)
             for a in loop.records[0]['accuracies'][:-1])


@pytest.mark.parametrize('key,value,match', [
    ('search.references', 'lamp,magic', 'unknown reference'),
    ('search.references', 'lamp,lamp+sensitivity', 'unknown reference'),
    ('search.references', 'lamp,lamp', 'twice'),
    ('search.references', '', 'needs at least one'),
    ('env.reference', 'magic', 'unknown reference'),
    ('select.incumbent', 'last', 'select.incumbent'),
    ('select.episode_score', 'luck', 'select.episode_score'),
    ('search.episodes', -1, 'search.episodes'),
    # No episode: the references must all be finalists.
    ('search.episodes', 0, 'search.episodes=0'),
    ('env.action_space', 'polar', 'env.action_space'),
    ('env.scales', (0.5, 1.0, 0.25), 'env.scales: .*scale grid'),
    ('env.scales', (0.5, 1.0), r'env.scales must be \(smallest, largest'),
    ('env.grid', ('a', 'b', 'c'), r'env.grid must be \(smallest, largest'),
])
def testCheckConfig_RejectsBadValuesBeforeAnyWork(key, value, match):
  config = _config()
  section, leaf = key.split('.')
  config[section][leaf] = value
  with pytest.raises(ValueError, match=match):
    search_loop.check_config(config)


def testCheckConfig_AbsoluteGridBelowTheTarget_NamesTheFix():
  config = config_defaults.paper_faithful(_config())
  config.prune.sparsity = 0.98
  with pytest.raises(ValueError, match='action_space=relative'):
    search_loop.check_config(config)
  config.env.action_space = 'relative'
  config.search.references = 'lamp'
  search_loop.check_config(config)


def testCheckConfig_AcceptsEveryTargetInTheRelativeSpace():
  for target in np.linspace(0.0, 0.99, 12):
    config = _config()
    config.prune.sparsity = float(target)
    search_loop.check_config(config)


@pytest.mark.parametrize('z', [2.0, 0.0])
def testShortRound_ScoresReferencesAndTheBestOthers_PicksByThePairedRule(
    dense, splits, z):
  config = _config(episodes=5, top_episodes=2, short_steps=15)
  env, loop = _run(dense, splits, config)
  with mock.patch.object(selection, 'WIN_Z', z):
    selection.Selection(loop, verbose=False).run()
  state = loop.state
  refs = [x for x in state.candidates if x['demo']]
  others = [x for x in state.candidates if not x['demo']]
  assert [d['reference'] for d in refs] == ['lamp', 'erk']
  assert len(others) <= 2
  # The others are the best-scoring agent episodes.
  scores = sorted((r['final_accuracy'] for r in loop.records
                   if not r['demo']), reverse=True)
  assert sorted((x['final_accuracy'] for x in others), reverse=True) == (
      scores[:len(others)])
  assert set(state.short) == {str(x['episode']) for x in state.candidates}
  correct = {k: selection.unpack_correct(v)
             for k, v in state.short_correct.items()}
  assert set(correct) == set(state.short)
  for k, v in correct.items():  # the accuracy is the mean of the vector
    assert state.short[k] == pytest.approx(v.mean())
  best = selection.choose(state.candidates, state.short, correct, z=z)
  if z == 0.0:
    assert best == max(state.candidates,
                       key=lambda x: state.short[str(x['episode'])])
  assert state.best['episode'] == best['episode']
  assert loop.policy(dense).metrics['short_accuracy'] == state.short[
      str(best['episode'])]


def testShortRound_ResumedRunKeepsScoresAlreadyMeasured(dense, splits,
                                                        tmp_path):
  config = _config(episodes=3, top_episodes=1, short_steps=15)
  first = pipeline.search(dense, splits.train, splits.reward, config,
                          workdir=str(tmp_path), verbose=False)
  scores = dict(first.state.short)
  assert len(scores) == 3
  env = search_loop.build_env(dense, splits.train, splits.reward, config)
  again = search_loop.SearchLoop(env, config, str(tmp_path), verbose=False)
  assert again.restore()
  env.ramp_accuracy = None  # any new measurement would fail
  again.run()
  selection.Selection(again, verbose=False).run()
  assert again.state.short == scores
  assert again.state.best['episode'] == first.state.best['episode']


def testOneCandidate_IsTheResult_NothingMeasured(dense, splits):
  config = _config(references='lamp', episodes=2, top_episodes=0)
  env, loop = _run(dense, splits, config)
  env.ramp_accuracy = None  # any measurement would fail
  selection.Selection(loop, verbose=False).run()
  assert loop.state.best['reference'] == 'lamp'
  assert loop.state.best['episode'] == 0
  assert loop.policy(dense).sparsity == allocation.lamp(dense, 0.8)


@pytest.fixture(scope='module')
def finished(dense, splits, tmp_path_factory):
  """A 2-episode search's workdir, and the environment it ran on."""
  workdir = str(tmp_path_factory.mktemp('finished'))
  config = _config(episodes=2, references='lamp')
  env = search_loop.build_env(dense, splits.train, splits.reward, config)
  search_loop.SearchLoop(env, config, workdir, verbose=False).run()
  return workdir, env, config


def _copy(finished, tmp_path):
  import shutil  # pylint: disable=g-import-not-at-top
  workdir, env, config = finished
  target = str(tmp_path / 'copy')
  shutil.copytree(workdir, target)
  return target, env, config


@pytest.mark.parametrize('text,match', [
    ('{"episode": 2, "env_st', 'is damaged'),
    ('', 'is damaged'),
    ('[1, 2]', 'holds no search state'),
    ('{"episode": 2, "colour": "red"}', r"unknown keys \['colour'\]"),
])
def testDamagedSearchState_OneErrorNamingTheFileAndTheFix(finished, tmp_path,
                                                          text, match):
  workdir, env, config = _copy(finished, tmp_path)
  with open(os.path.join(workdir, 'search_state.json'), 'w') as f:
    f.write(text)
  loop = search_loop.SearchLoop(env, config, workdir, verbose=False)
  with pytest.raises(ValueError, match=match) as info:
    loop.restore()
  assert 'search_state.json' in str(info.value)
  assert '--overwrite' in str(info.value)


def testGarbageLinePastTheCheckpoint_IsDroppedOnResume(finished, tmp_path):
  workdir, env, config = _copy(finished, tmp_path)
  path = os.path.join(workdir, 'episodes.jsonl')
  with open(path, 'a') as f:
    f.write('not json at all\n{"half": \n')
  loop = search_loop.SearchLoop(env, config, workdir, verbose=False)
  assert loop.restore()
  assert [r['episode'] for r in io_utils.read_jsonl(path)] == [0, 1]


def testGarbageLineBeforeTheCheckpoint_NamesFileAndLine(finished, tmp_path):
  workdir, env, config = _copy(finished, tmp_path)
  path = os.path.join(workdir, 'episodes.jsonl')
  with open(path) as f:
    lines = f.readlines()
  with open(path, 'w') as f:
    f.writelines(['garbage\n'] + lines[1:])
  loop = search_loop.SearchLoop(env, config, workdir, verbose=False)
  with pytest.raises(ValueError, match='episodes.jsonl line 1 is not JSON'):
    loop.restore()


def testDiskFullMidSearch_LeavesTheWorkdirResumable(dense, splits, tmp_path):
  workdir = str(tmp_path / 'full')
  config = _config(episodes=3, references='lamp')
  env = search_loop.build_env(dense, splits.train, splits.reward, config)
  calls = []
  real = io_utils.append_jsonl

  def fills_up(path, obj):
    calls.append(obj['episode'])
    if obj['episode'] == 1:
      raise OSError(errno.ENOSPC, 'No space left on device', path)
    real(path, obj)
  with mock.patch.object(io_utils, 'append_jsonl', fills_up):
    with pytest.raises(OSError):
      search_loop.SearchLoop(env, config, workdir, verbose=False).run()
  loop = search_loop.SearchLoop(env, config, workdir, verbose=False)
  assert loop.restore() and loop.state.episode == 1
  loop.run()
  rows = io_utils.read_jsonl(os.path.join(workdir, 'episodes.jsonl'))
  assert [r['episode'] for r in rows] == [0, 1, 2]


def testRandomSearch_LearnsNothing_PlaysUniformActionsThatMeetTheTarget(
    dense, splits):
  config = _config(episodes=5)
  config.agent.kind = 'random'
  env, loop = _run(dense, splits, config)
  others = [r for r in loop.records if not r['demo']]
  assert len(others) == 3
  assert all(r['agent_loss'] is None and not r['greedy'] for r in others)
  assert len({tuple(r['actions']) for r in others}) == 3
  assert all(r['global_sparsity'] == pytest.approx(0.8) for r in loop.records)


def testLocalSearch_EachEpisodeIsOneMoveFromTheBestSoFar(dense, splits):
  config = _config(episodes=6)
  config.agent.kind = 'local'
  config.select.top_episodes = 0  # the best episode is the result
  env, loop = _run(dense, splits, config)
  best = None
  for r in loop.records:
    if not r['demo']:
      changed = [a - b for a, b in zip(r['actions'], best['actions']) if a != b]
      assert sorted(changed) in ([-1, 1], [-2, 2]), (r['actions'], best['actions'])
      assert r['agent_loss'] is None
    if best is None or r['final_accuracy'] > best['final_accuracy']:
      best = r
  assert loop.state.best['episode'] == best['episode']
  assert all(r['global_sparsity'] == pytest.approx(0.8) for r in loop.records)
