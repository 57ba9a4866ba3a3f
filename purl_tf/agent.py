"""The DQN agent that learns per-layer sparsities, built from tf-agents' classes.

`Learner` owns a `DqnAgent` (or `DdqnAgent`) with a `QNetwork`, an
epsilon-greedy collect policy whose epsilon is a `tf.Variable` (so it is
checkpointed with the agent), a `TFUniformReplayBuffer`, and the two things
the search loop calls: `run_episode()` and `train()`. It works with any
`PyEnvironment` with a scalar integer action, which is how the learning test
drives it on a cheap synthetic environment.
"""

import functools
from typing import List, Optional

import numpy as np
from tf_agents.agents.dqn import dqn_agent
from tf_agents.networks import q_network
from tf_agents.policies import py_tf_eager_policy
from tf_agents.replay_buffers import tf_uniform_replay_buffer
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import trajectory
from tf_agents.utils import common

from purl_tf import strategies
from purl_tf.compat import keras, tf

# The learners; agent.kind may also name a measuring stick
# (`purl_tf/strategies.py`), for which the Learner only plays given actions.
KINDS = strategies.LEARNERS


def epsilon_at(episode: int, config) -> float:
  """Epsilon of the collect policy in `episode` (0-based).

  1.0 during the warm-up episodes, then a linear decay from 1.0 to
  `epsilon_end` over `epsilon_decay_episodes`.
  """
  if episode < int(config.warmup_episodes):
    return 1.0
  span = max(1, int(config.epsilon_decay_episodes))
  frac = min(1.0, (episode - int(config.warmup_episodes)) / span)
  return float(1.0 + (config.epsilon_end - 1.0) * frac)


def _batch(nest):
  return tf.nest.map_structure(lambda x: tf.convert_to_tensor(x)[None], nest)


class Learner:
  """A tf-agents DQN agent, its replay buffer and an episode runner.

  Args:
    env: a `PyEnvironment` with a scalar integer action.
    config: the `agent` part of a purl_tf config.
  """

  def __init__(self, env, config):
    strategies.check_kind(config.kind)
    # A measuring stick learns nothing: its episodes are played from given
    # actions (the DQN is built all the same, for one checkpoint layout).
    self.learns = config.kind in KINDS
    for field in ('batch_size', 'train_iterations', 'replay_capacity',
                  'target_update_period', 'n_step'):
      if int(config[field]) <= 0:
        raise ValueError(f'agent.{field} must be positive, got {config[field]}')
    if not 0.0 <= config.epsilon_end <= 1.0:
      raise ValueError('need 0 <= agent.epsilon_end <= 1')
    self.env = env
    self.config = config
    time_step_spec = tensor_spec.from_spec(env.time_step_spec())
    action_spec = tensor_spec.from_spec(env.action_spec())
    self.epsilon = tf.Variable(1.0, trainable=False, name='epsilon')
    self.train_step = tf.Variable(0, dtype=tf.int64, trainable=False,
                                  name='train_step')
    net = q_network.QNetwork(time_step_spec.observation, action_spec,
                             fc_layer_params=tuple(config.fc_layers))
    cls = dqn_agent.DdqnAgent if config.kind == 'double_dqn' else dqn_agent.DqnAgent
    self.agent = cls(
        time_step_spec, action_spec, q_network=net,
        optimizer=keras.optimizers.Adam(config.learning_rate),
        epsilon_greedy=lambda: self.epsilon,
        n_step_update=int(config.n_step),
        target_update_period=int(config.target_update_period),
        td_errors_loss_fn=common.element_wise_huber_loss,
        gamma=float(config.gamma), train_step_counter=self.train_step)
    self.agent.initialize()
    self.replay = tf_uniform_replay_buffer.TFUniformReplayBuffer(
        self.agent.collect_data_spec, batch_size=1,
        max_length=int(config.replay_capacity))
    self._train_fn = common.function(self.agent.train)
    self.reseed(None)

  def reseed(self, seed: Optional[int]):
    """Restarts every random stream of the agent from `seed`.

    TensorFlow's stateful random ops (epsilon-greedy draws, replay sampling)
    take their seeds when their function or dataset is built, from the global
    seed and a counter. Setting the global seed and rebuilding the policy
    functions and the replay sampler makes what follows depend on `seed`
    alone, not on what ran before in this process: the search reseeds at
    every episode, so a resumed search draws exactly what an uninterrupted
    one would.

    Args:
      seed: the new global seed; None keeps the current one.
    """
    if seed is not None:
      tf.random.set_seed(int(seed))
    self._collect = py_tf_eager_policy.PyTFEagerPolicy(
        self.agent.collect_policy, use_tf_function=True)
    self._greedy = py_tf_eager_policy.PyTFEagerPolicy(
        self.agent.policy, use_tf_function=True)
    self._sample = None

  def run_episode(self, greedy: bool = False, record: bool = True,
                  actions: Optional[List[int]] = None) -> dict:
    """Plays one episode; its transitions go to the replay buffer.

    Args:
      greedy: act with the greedy policy instead of epsilon-greedy.
      record: add the transitions to the replay buffer.
      actions: play these actions (one per step) instead of the policy's;
        a demonstration the agent then learns from like any episode.

    Returns:
      `{'actions': [...], 'rewards': [...], 'return': float}`.
    """
    policy = self._greedy if greedy else self._collect
    time_step = self.env.reset()
    taken: List[int] = []
    rewards: List[float] = []
    while not time_step.is_last():
      action_step = policy.action(time_step)
      if actions is not None:
        action_step = action_step._replace(
            action=np.asarray(actions[len(taken)], dtype=np.int64))
      next_step = self.env.step(action_step.action)
      if record:
        self.replay.add_batch(_batch(
            trajectory.from_transition(time_step, action_step, next_step)))
      taken.append(int(action_step.action))
      rewards.append(float(next_step.reward))
      time_step = next_step
    return {'actions': taken, 'rewards': rewards, 'return': float(sum(rewards))}

  def train(self, iterations: Optional[int] = None) -> Optional[float]:
    """Runs `iterations` DQN updates on replay samples; returns the mean loss.

    Returns None (and does nothing) while the buffer holds fewer frames than
    one batch.
    """
    if int(self.replay.num_frames()) < int(self.config.batch_size):
      return None
    if self._sample is None:
      # A tf.function rather than `replay.as_dataset()`: under op determinism
      # every tf.data iterator built over the buffer's sampling function
      # makes TensorFlow 2.21 log an error-level line (a MapDataset attribute
      # its graph rewrite does not know), though nothing is wrong. The
      # function is seeded the same way: its random op takes its seed when
      # it is traced, as the dataset's did when it was built.
      self._sample = common.function(functools.partial(
          self.replay.get_next, sample_batch_size=int(self.config.batch_size),
          num_steps=int(self.config.n_step) + 1, time_stacked=True))
    losses = []
    for _ in range(int(iterations or self.config.train_iterations)):
      experience, _ = self._sample()
      losses.append(float(self._train_fn(experience).loss))
    return float(np.mean(losses))

  def greedy_actions(self) -> List[int]:
    """The greedy policy's actions on one episode, not recorded."""
    return self.run_episode(greedy=True, record=False)['actions']
