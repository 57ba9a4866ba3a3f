"""Tests for purl_tf.env on the benchmark CNN with real Fashion-MNIST batches."""

import numpy as np
import pytest
from tf_agents.environments import utils

from purl_tf import allocation, batchnorm, env as env_lib, models, pruning, reward, train
from purl_tf.compat import keras, tf


def _env(splits, target=0.8, **kwargs):
  """The absolute (paper) action space unless `action_space` says otherwise."""
  keras.utils.set_random_seed(0)
  model = models.fmnist_cnn()
  train.compile_model(model, 1e-3)
  train.fine_tune(model, splits.train, epochs=1, steps=8)
  args = dict(finetune_steps=2, subset_batches=4, eval_batches=2,
              action_space='absolute')
  args.update(kwargs)
  return env_lib.PruningEnv(model, splits.train, splits.reward,
                            reward.TargetPenaltyReward(), target, **args)


def testRelativeEnv_PassesTfAgentsSpecChecks(splits):
  utils.validate_py_environment(_env(splits, action_space='relative'),
                                episodes=2)


def _play(env, actions):
  env.reset()
  for a in actions:
    env.step(np.int64(a))
  return env.chosen()


@pytest.mark.parametrize('target', [0.0, 0.5, 0.9, 0.99])
def testRelativeEnv_NeutralEpisodeIsTheReferenceAndEveryEpisodeMeetsTarget(
    splits, target):
  env = _env(splits, target, action_space='relative', finetune_steps=0,
             eval_batches=1, final_eval_batches=1)
  ref = allocation.erk(env.model, target)
  env.set_reference(ref)
  got = _play(env, [env.neutral_action] * env.num_layers)
  want = allocation.fit_to_target(env.infos, ref, target)
  assert got == pytest.approx(want, abs=1e-9)
  rng = np.random.RandomState(0)
  for _ in range(3):
    _play(env, rng.randint(0, len(env.grid), env.num_layers))
    assert env.reached_sparsity() == pytest.approx(target, abs=1e-9)


def testRampAccuracy_ReachesEveryTargetWithoutRetracingThenResets(splits):
  env = _env(splits, 0.8, action_space='relative', finetune_steps=1,
             eval_batches=1)
  env.reset()
  env.step(np.int64(env.neutral_action))  # traces the train function
  traces = env.model.train_function.experimental_get_tracing_count()
  want = {'conv1': 0.3, 'conv2': 0.6, 'fc1': 0.95, 'fc2': 0.5}
  acc = env.ramp_accuracy(want, ramp_steps=6, hold_steps=2, chunks=3)
  assert 0.0 <= acc <= 1.0
  report = pruning.sparsity_report(env.model)
  assert report['layers'] == pytest.approx(want, abs=0.005)
  # The optimizer was reset to its untrained state, then took 6 + 2 steps.
  assert int(env.model.optimizer.iterations.numpy()) == 8
  assert env.model.train_function.experimental_get_tracing_count() == traces
  time_step = env.step(np.int64(env.neutral_action))  # resets first
  assert time_step.is_first()
  assert pruning.sparsity_report(env.model)['global'] == 0.0


def testSensitivityScan_PrunesOneLayerAtATime_DeterministicThenDense(splits):
  env = _env(splits, 0.8, action_space='relative', eval_batches=2)
  dense = [w.copy() for w in env.model.get_weights()]
  grid = (0.0, 0.5, 0.99)
  scan = env.sensitivity_scan(grid)
  assert sorted(scan) == sorted(i.name for i in env.infos)
  assert all(sorted(v) == list(grid) for v in scan.values())
  # Every layer at 0 is the dense net; 99% of the big layer alone hurts.
  assert all(v[0.0] == env.dense_accuracy for v in scan.values())
  assert scan['fc1'][0.99] < scan['fc1'][0.0]
  assert env.sensitivity_scan(grid) == scan
  for got, want in zip(env.model.get_weights(), dense):
    np.testing.assert_array_equal(got, want)
  assert env.step(np.int64(env.neutral_action)).is_first()  # resets first


def testRelativeEnv_ActionsMoveTheFirstLayerByTheirScale(splits):
  env = _env(splits, 0.9, action_space='relative', finetune_steps=0,
             eval_batches=1)
  env.set_reference(allocation.uniform(env.model, 0.9))
  env.reset()
  kept = [1.0 - env.action_sparsity(a) for a in range(len(env.grid))]
  # conv1 keeps 10% in the reference: 2**u times that, u in -1 ... 1.
  assert kept == pytest.approx([0.1 * 2.0 ** u for u in env.grid], abs=1e-9)


def testEnv_PassesTfAgentsSpecChecks(splits):
  utils.validate_py_environment(_env(splits), episodes=2)


def testEpisode_RewardAtEveryStepAndEndsAfterLastLayer(splits):
  env = _env(splits)
  time_step = env.reset()
  assert time_step.is_first()
  rewards = []
  for t in range(env.num_layers):
    assert not time_step.is_last()
    time_step = env.step(np.int64(3))
    rewards.append(float(time_step.reward))
  assert time_step.is_last() and len(env.step_log) == env.num_layers == 4
  assert all(np.isfinite(rewards)) and any(r != 0 for r in rewards)
  assert [s['layer'] for s in env.step_log] == ['conv1', 'conv2', 'fc1', 'fc2']


def testBudgetClamp_EveryEpisodeMeetsTheTarget(splits):
  env = _env(splits)
  env.reset()
  for _ in range(env.num_layers):
    env.step(np.int64(0))  # the agent asks for no pruning at all
  assert env.reached_sparsity() >= 0.8


def testStep_ChangesOnlyItsLayerWithoutNewVariablesOrRetracing(splits):
  env = _env(splits, clamp=False)
  env.reset()
  env.step(np.int64(10))  # first step traces train/eval functions
  n_vars = len(env.model.variables)
  train_fn = env.model.train_function
  traces = train_fn.experimental_get_tracing_count()
  for _ in range(2):
    env.reset()
    for t in range(env.num_layers):
      env.step(np.int64(10))
      targets = [float(v.numpy()) for v in env._targets]  # pylint: disable=protected-access
      assert targets == [0.5] * (t + 1) + [0.0] * (env.num_layers - t - 1)
  assert len(env.model.variables) == n_vars
  assert env.model.train_function is train_fn
  assert train_fn.experimental_get_tracing_count() == traces


def testReset_RestoresDenseWeights(splits):
  env = _env(splits)
  env.reset()
  before = [w.copy() for w in env.model.get_weights()]
  for _ in range(env.num_layers):
    env.step(np.int64(19))
  env.reset()
  for a, b in zip(before, env.model.get_weights()):
    np.testing.assert_array_equal(a, b)


def testDivergedFinetune_EndsEpisodeWithPenalty(splits):
  env = _env(splits, learning_rate=1e12, optimizer='sgd', nan_penalty=-5.0)
  env.reset()
  steps = 0
  time_step = env.reset()
  while not time_step.is_last():
    time_step = env.step(np.int64(5))
    steps += 1
  assert env.step_log[-1]['diverged']
  assert float(time_step.reward) == -5.0


def testNoFinetune_StillMasksTheLayer(splits):
  env = _env(splits, finetune_steps=0)
  env.reset()
  env.step(np.int64(10))
  kernel = env.model.get_layer('prune_low_magnitude_conv1').layer.kernel.numpy()
  assert np.mean(kernel == 0) == pytest.approx(0.5, abs=1 / 288)


@pytest.mark.parametrize('t,index,chosen,expected', [
    # params 100/100/800 and target 0.9: 900 weights must go.
    (0, 0, [], 9),           # the rest take at most 0.95*900 = 855: 45 here
    (0, 12, [], 12),         # an action above the least is kept
    (1, 0, [0.95], 9),       # 95 done, 760 at most after: 45 here
    (1, 0, [0.5], 18),       # 50 done, 760 at most after: 90 here
    (2, 0, [0.0, 0.0], 19),  # the last layer cannot reach it: the maximum
])
def testBudgetClamp_HandComputed(t, index, chosen, expected):
  grid = env_lib.action_grid()
  params = [100, 100, 800]
  got = env_lib.budget_clamp(grid, index, t, params, chosen, 0.9)
  assert got == expected


@pytest.mark.parametrize('t,scale,kept,expected', [
    # params 100/100/800, reference keeps 50/20/30 (a 90% target).
    (0, 0.0, [], 50.0),           # neutral: the reference
    (0, 1.0, [], 75.0),           # 100 asked; the rest must keep 10 + 15
    (0, -1.0, [], 25.0),          # half: the floor
    (1, 0.0, [75.0], 10.0),       # 25 left for a reference rest of 50
    (1, 1.0, [75.0], 10.0),       # the last layer's floor (15) binds
    (2, 0.5, [75.0, 10.0], 15.0),  # the last layer takes what is left
    (2, -1.0, [25.0, 10.0], 65.0),
])
def testRelativeKept_HandComputed(t, scale, kept, expected):
  got = env_lib.relative_kept(t, scale, [50.0, 20.0, 30.0], [100, 100, 800],
                              kept, -1.0)
  assert got == pytest.approx(expected)


def testScaleGrid_HasTheNeutralActionAndValidates():
  grid = env_lib.scale_grid(-1.0, 1.0, 0.25)
  assert len(grid) == 9 and grid[4] == 0.0
  assert list(env_lib.scale_grid(-0.5, 1.0, 0.5)) == [-0.5, 0.0, 0.5, 1.0]
  with pytest.raises(ValueError):
    env_lib.scale_grid(0.5, 1.0, 0.25)


def testAbsoluteGrid_BelowTheTargetIsRefusedUpFront(splits):
  with pytest.raises(ValueError, match='action_space=relative'):
    _env(splits, 0.95)


def testActionGrid_Validates():
  assert len(env_lib.action_grid()) == 20
  with pytest.raises(ValueError):
    env_lib.action_grid(0.0, 1.0, 0.05)


def _bn_step(splits, bn_batches):
  """One step on fmnist_resnet; returns (env, a BN layer, its mean before, after)."""
  keras.utils.set_random_seed(0)
  model = models.fmnist_resnet()
  train.compile_model(model, 1e-3)
  train.fine_tune(model, splits.train, epochs=1, steps=4)
  env = env_lib.PruningEnv(model, splits.train, splits.reward,
                           reward.TargetPenaltyReward(), 0.5,
                           finetune_steps=1, subset_batches=3, eval_batches=1,
                           bn_batches=bn_batches)
  bn = env.model.get_layer('s3b2_bn2')
  before = bn.moving_mean.numpy().copy()
  env.reset()
  env.step(np.int64(env.neutral_action))
  return env, bn, before, bn.moving_mean.numpy().copy()


def testBatchNormNet_StepReestimatesStatisticsFromCachedBatches(splits):
  env, bn, before, after_step = _bn_step(splits, bn_batches=2)
  # The step's fine-tune moves the averages by 1% (momentum 0.99); the
  # re-estimate replaces them.
  assert np.abs(after_step - before).max() > 0.05
  # They are the statistics of the first two cached batches: doing it again
  # by hand on those batches changes nothing.
  batchnorm.recalibrate(env.model, env._cached_ds, 2)  # pylint: disable=protected-access
  np.testing.assert_allclose(bn.moving_mean.numpy(), after_step, atol=1e-5)


def testBatchNormOff_KeepsTheTrailingAverages(splits):
  _, _, before, after_step = _bn_step(splits, bn_batches=0)
  # One fine-tune batch at momentum 0.99 moves them by 1% of the gap.
  assert np.abs(after_step - before).max() < 0.05


def testRelativeEnv_FlopsBudget_EveryEpisodeMeetsTheTargetInFlops(splits):
  env = _env(splits, 0.9, action_space='relative', finetune_steps=0,
             eval_batches=1, final_eval_batches=1, budget='flops')
  env.set_reference(allocation.lamp(env.model, 0.9, budget='flops'))
  rng = np.random.RandomState(0)
  for _ in range(3):
    chosen = _play(env, rng.randint(0, len(env.grid), env.num_layers))
    assert env.reached_sparsity() == pytest.approx(0.9, abs=1e-9)
    assert pruning.budget_sparsity(env.infos, chosen, 'flops') == pytest.approx(
        0.9, abs=1e-9)
    # The same weights counted as parameters: another share.
    assert abs(pruning.global_sparsity(env.infos, chosen) - 0.9) > 1e-3
