"""The configured DQN learns a known optimal allocation on a synthetic MDP.

The synthetic environment has PuRL's action space (the default grid of 20
sparsities) and observation size, and a reward at every step:
r_t = -|grid[a_t] - OPTIMUM[t]| / 0.05, so the optimal per-layer allocation
is known. Seeded; the episode budget below is what the test asserts.
"""

import numpy as np
import pytest

import purl_tf  # pylint: disable=unused-import  (selects Keras 2 before tf-agents loads TF)
from tf_agents.environments import py_environment, utils
from tf_agents.specs import array_spec
from tf_agents.trajectories import time_step as ts

from purl_tf import agent, config_defaults, env as env_lib
from purl_tf.compat import keras

OPTIMUM = (0.3, 0.65, 0.9, 0.5)
EPISODES = 60


class SyntheticPruningEnv(py_environment.PyEnvironment):
  """Four 'layers'; the observation is PuRL's, with the layer position set."""

  def __init__(self):
    super().__init__()
    self.grid = env_lib.action_grid()
    self._t = 0

  def observation_spec(self):
    return array_spec.BoundedArraySpec((env_lib.NUM_FEATURES,), np.float32, 0.0, 1.0)

  def action_spec(self):
    return array_spec.BoundedArraySpec((), np.int64, 0, len(self.grid) - 1)

  def _obs(self):
    obs = np.zeros(env_lib.NUM_FEATURES, np.float32)
    obs[0] = self._t / len(OPTIMUM)
    return obs

  def _reset(self):
    self._t = 0
    return ts.restart(self._obs())

  def _step(self, action):
    if self._t == len(OPTIMUM):
      return self.reset()
    reward = -abs(self.grid[int(action)] - OPTIMUM[self._t]) / 0.05
    self._t += 1
    if self._t == len(OPTIMUM):
      return ts.termination(self._obs(), np.float32(reward))
    return ts.transition(self._obs(), np.float32(reward))


def testSyntheticEnv_PassesTfAgentsSpecChecks():
  utils.validate_py_environment(SyntheticPruningEnv(), episodes=3)


def testDqn_FindsTheOptimumWithinOneGridStep():
  keras.utils.set_random_seed(0)
  config = config_defaults.base_config().agent
  env = SyntheticPruningEnv()
  learner = agent.Learner(env, config)
  for episode in range(EPISODES):
    learner.epsilon.assign(agent.epsilon_at(episode, config))
    learner.run_episode()
    if episode + 1 >= config.warmup_episodes:
      learner.train()
  chosen = env.grid[learner.greedy_actions()]
  assert np.all(np.abs(chosen - np.asarray(OPTIMUM)) <= 0.05 + 1e-9), chosen


def testEpsilonSchedule_WarmsUpThenDecays():
  config = config_defaults.base_config().agent
  assert agent.epsilon_at(0, config) == 1.0
  assert agent.epsilon_at(config.warmup_episodes, config) == 1.0
  late = config.warmup_episodes + config.epsilon_decay_episodes + 10
  assert agent.epsilon_at(late, config) == pytest.approx(config.epsilon_end)
