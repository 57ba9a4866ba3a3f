"""Tests for purl_tf.strategies and purl_tf.curves: the measuring sticks."""

import json
import math

import numpy as np
import pytest

from purl_tf import allocation, curves, env as env_lib, models, pruning, reward
from purl_tf import strategies, train
from purl_tf.compat import keras


def testRandomActions_AreUniformOverTheGrid_AndSeeded():
  a = strategies.random_actions(9, 5000, np.random.RandomState(0))
  b = strategies.random_actions(9, 5000, np.random.RandomState(0))
  assert a == b and min(a) == 0 and max(a) == 8
  counts = np.bincount(a, minlength=9)
  assert counts.min() > 5000 / 9 * 0.8


def testLocalMove_RaisesOneLayerAndLowersAnother_WithinTheGrid():
  incumbent = [4, 4, 4, 4]
  for seed in range(50):
    moved = strategies.local_move(incumbent, 9, np.random.RandomState(seed))
    diff = np.asarray(moved) - np.asarray(incumbent)
    assert sorted(diff[diff != 0].tolist()) in ([-1, 1], [-2, 2])
  # At the grid's edges a move still changes something and stays inside.
  for seed in range(50):
    moved = strategies.local_move([0, 8, 0], 9, np.random.RandomState(seed))
    assert moved != [0, 8, 0] and all(0 <= m <= 8 for m in moved)


def testLocalMove_BadInput_Raises():
  with pytest.raises(ValueError, match='two layers'):
    strategies.local_move([3], 9, np.random.RandomState(0))


def testCheckKind_NamesTheKey():
  strategies.check_kind('local')
  with pytest.raises(ValueError, match='agent.kind must be one of'):
    strategies.check_kind('ppo')


def _relative_env(splits, target, budget='params'):
  keras.utils.set_random_seed(0)
  model = models.fmnist_cnn()
  train.compile_model(model, 1e-3)
  env = env_lib.PruningEnv(
      model, splits.train, splits.reward, reward.AccuracyDeltaReward(), target,
      action_space='relative', finetune_steps=0, subset_batches=2,
      eval_batches=1, final_eval_batches=1, budget=budget)
  env.set_reference(allocation.lamp(env.model, target, budget=budget))
  return env


@pytest.mark.parametrize('budget', ['params', 'flops'])
def testRandomAndLocalEpisodes_MeetTheTargetExactly(splits, budget):
  env = _relative_env(splits, 0.9, budget)
  n = int(env.action_spec().maximum) + 1
  rng = np.random.RandomState(0)
  incumbent = [env.neutral_action] * env.num_layers
  for _ in range(3):
    for actions in (strategies.random_actions(n, env.num_layers, rng),
                    strategies.local_move(incumbent, n, rng)):
      env.reset()
      for a in actions:
        env.step(np.int64(a))
      assert pruning.budget_sparsity(env.infos, env.chosen(), budget) == (
          pytest.approx(0.9, abs=1e-9))


def testBestSoFar_HandComputed_SkipsUnscoredEpisodes():
  got = curves.best_so_far([None, 0.5, 0.4, float('nan'), 0.7, 0.6])
  assert math.isnan(got[0])
  assert got[1:] == [0.5, 0.5, 0.5, 0.7, 0.7]


def testSummarize_MeanAndStdPerEvaluation():
  got = curves.summarize([[0.1, 0.3], [0.3, 0.5]])
  assert got['mean'] == pytest.approx([0.2, 0.4])
  assert got['std'] == pytest.approx([math.sqrt(0.02)] * 2)
  with pytest.raises(ValueError, match='equal evaluations'):
    curves.summarize([[0.1], [0.1, 0.2]])


def testWriteCurves_WritesJsonAndPng_NamedCurve(tmp_path):
  stem = str(tmp_path / 'fmnist_curves_resnet_0.95')
  runs = {'agent': [[0.5, 0.6, 0.6], [0.4, 0.7, 0.8]], 'random': [[0.5, 0.5, 0.55]]}
  path_json, path_png = curves.write_curves(stem, runs, title='t')
  with open(path_json) as f:
    payload = json.load(f)
  assert payload['agent']['mean'] == pytest.approx([0.45, 0.65, 0.7])
  assert payload['random']['std'] == [0.0, 0.0, 0.0]
  assert payload['agent']['runs'][1] == [0.4, 0.7, 0.8]
  with open(path_png, 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  with pytest.raises(ValueError, match='must contain "curve"'):
    curves.write_curves(str(tmp_path / 'results'), runs)
