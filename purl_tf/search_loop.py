"""The PuRL search loop, shared by `purl-search` and `purl_tf.search()`.

Everything is built first (environment, agent, outputs); `run()` is then a
short loop: play an episode, train the agent, log, keep the best episode,
checkpoint. The best episode is the one with the highest return among those
that meet the sparsity budget; `policy()` turns it into a `Policy`.

With a `workdir`, the loop writes:
  episodes.jsonl      one line per finished episode
  search_state.json   episode counter and best so far (for resume)
  checkpoints/        agent, replay buffer, epsilon (tf-agents Checkpointer)
  tensorboard/search  per-step reward, episode return, epsilon, agent loss,
                      best policy's per-layer sparsity
and `save_policy()` adds policy.json and greedy_policy/ (PolicySaver).
"""

import dataclasses
import json
import os
import time
import warnings
from typing import Callable, Optional

from absl import logging
import numpy as np
from tf_agents.policies import policy_saver
from tf_agents.utils import common

from purl_tf import agent as agent_lib
from purl_tf import env as env_lib
from purl_tf import allocation, io_utils, policy as policy_lib, pruning
from purl_tf import reward as reward_lib
from purl_tf.compat import keras, tf


@dataclasses.dataclass
class SearchState:
  """What the loop carries from one episode to the next (and across resumes)."""
  episode: int = 0
  env_steps: int = 0
  best: Optional[dict] = None
  search_s: float = 0.0


def build_env(model: keras.Model, train_ds, reward_ds, config,
              strategy=None, lr_scale: float = 1.0) -> env_lib.PruningEnv:
  """The PuRL environment for a trained model and a purl_tf config.

  `lr_scale` multiplies `search.learning_rate` (for a scaled global batch).
  """
  c = config
  grid = env_lib.action_grid(c.env.action_min, c.env.action_max,
                             c.env.action_step)
  return env_lib.PruningEnv(
      model, train_ds, reward_ds, reward_lib.from_config(c.reward),
      float(c.prune.sparsity), strategy=strategy, grid=grid,
      clamp=bool(c.env.budget_clamp),
      finetune_steps=int(c.search.finetune_steps),
      subset_batches=int(c.search.subset_batches),
      eval_batches=int(c.search.eval_batches),
      learning_rate=float(c.search.learning_rate) * lr_scale,
      nan_penalty=float(c.search.nan_penalty),
      frequency=int(c.env.frequency), seed=int(c.seed),
      bn_batches=int(c.search.bn_batches))


class SearchLoop:
  """Runs episodes of a `PruningEnv` with a DQN `Learner`.

  Args:
    env: the environment.
    config: a purl_tf config (its `search`, `agent` and `prune` parts).
    workdir: where to write outputs; None writes nothing.
    verbose: print one line per episode.
  """

  def __init__(self, env: env_lib.PruningEnv, config, workdir: Optional[str] = None,
               verbose: bool = True):
    self.env = env
    self.config = config
    self.workdir = workdir
    self.verbose = verbose
    self.learner = agent_lib.Learner(env, config.agent)
    self.state = SearchState()
    self.records = []  # this process's episode records, as in episodes.jsonl
    self.target = float(config.prune.sparsity)
    self.tolerance = float(config.search.sparsity_tolerance)
    self.names = [i.name for i in env.infos]
    self._episode_var = tf.Variable(0, dtype=tf.int64, trainable=False)
    self.prior_actions = self._prior_actions(str(config.search.prior))
    self._writer = self._checkpointer = None
    if workdir:
      self._checkpointer = common.Checkpointer(
          ckpt_dir=os.path.join(workdir, 'checkpoints'), max_to_keep=1,
          agent=self.learner.agent, replay_buffer=self.learner.replay,
          epsilon=self.learner.epsilon, episode=self._episode_var,
          global_step=self.learner.train_step)
      self._writer = tf.summary.create_file_writer(
          os.path.join(workdir, 'tensorboard', 'search'))

  def _prior_actions(self, prior: str) -> Optional[list]:
    """Grid indices nearest to a baseline allocation, for the first episode."""
    if not prior:
      return None
    if prior not in ('uniform', 'global_magnitude'):
      raise ValueError(f'search.prior must be \'\', uniform or global_magnitude, '
                       f'got {prior!r}')
    # The wrapped model still holds the dense weights (all targets 0).
    sparsity = allocation.allocate(prior, self.env.model, self.target)
    grid = np.asarray(self.env.grid)
    return [int(np.argmin(np.abs(grid - sparsity[n]))) for n in self.names]

  def _path(self, name):
    return os.path.join(self.workdir, name)

  def restore(self) -> bool:
    """Continues from the workdir's last checkpoint; False when there is none."""
    if not self.workdir or not os.path.exists(self._path('search_state.json')):
      return False
    self._checkpointer.initialize_or_restore()
    with open(self._path('search_state.json')) as f:
      self.state = SearchState(**json.load(f))
    if int(self._episode_var.numpy()) != self.state.episode:
      raise ValueError(
          f'checkpoint is at episode {int(self._episode_var.numpy())} but '
          f'search_state.json at {self.state.episode}; remove the workdir '
          'or pass --overwrite')
    # Lines past the checkpoint belong to an episode that will be replayed.
    rows = io_utils.read_jsonl(self._path('episodes.jsonl'))[:self.state.episode]
    with open(self._path('episodes.jsonl'), 'w') as f:
      f.writelines(json.dumps(r, sort_keys=True) + '\n' for r in rows)
    return True

  def run(self, on_episode: Optional[Callable[[dict], None]] = None) -> SearchState:
    """Plays episodes up to `config.search.episodes`; returns the state.

    Args:
      on_episode: called with each finished episode's record (benchmarks
        sample memory there).
    """
    c = self.config
    episodes = int(c.search.episodes)
    if self.verbose:
      print(f'searching {len(self.names)} layers for {episodes} episodes '
            f'(target sparsity {self.target:.3f}, dense reward accuracy '
            f'{self.env.dense_accuracy:.4f})', flush=True)
    for episode in range(self.state.episode, episodes):
      record = self._episode(episode)
      self._log(record)
      if on_episode is not None:
        on_episode(record)
    if self.state.best is None:
      raise ValueError(
          f'no episode met the sparsity budget {self.target} within '
          f'{self.tolerance}; enable --config.env.budget_clamp=True or run '
          'more episodes')
    return self.state

  def _episode(self, episode: int) -> dict:
    c = self.config
    t0 = time.perf_counter()
    # Every random stream restarts from (seed, episode): see Learner.reseed.
    episode_seed = int(c.seed) * 100_003 + episode
    self.learner.reseed(episode_seed)
    self.env.reseed(episode_seed)
    epsilon = agent_lib.epsilon_at(episode, c.agent)
    self.learner.epsilon.assign(epsilon)
    every = int(c.search.greedy_every)
    greedy = bool(every) and (episode + 1) % every == 0
    prior = episode == 0 and self.prior_actions is not None
    played = self.learner.run_episode(
        greedy=greedy, actions=self.prior_actions if prior else None)
    loss = (self.learner.train()
            if episode + 1 >= int(c.agent.warmup_episodes) else None)
    steps = self.env.step_log
    record = {
        'episode': episode, 'greedy': greedy, 'prior': prior,
        'epsilon': epsilon,
        'actions': played['actions'],
        'sparsity': [s['sparsity'] for s in steps],
        'rewards': played['rewards'], 'return': played['return'],
        'accuracies': [s['accuracy'] for s in steps],
        'global_sparsity': self.env.reached_sparsity(),
        'diverged': any(s['diverged'] for s in steps),
        'agent_loss': loss,
        'finetune_s': sum(s['finetune_s'] for s in steps),
        'eval_s': sum(s['eval_s'] for s in steps),
        'wall_s': time.perf_counter() - t0,
    }
    state = self.state
    state.env_steps += len(steps)
    meets = record['global_sparsity'] >= self.target - self.tolerance
    if meets and not record['diverged'] and (
        state.best is None or record['return'] > state.best['return']):
      state.best = {k: record[k] for k in ('episode', 'return', 'sparsity',
                                           'global_sparsity', 'accuracies')}
    state.episode = episode + 1
    state.search_s += record['wall_s']
    self.records.append(record)
    return record

  def _log(self, record: dict):
    state, c = self.state, self.config
    if self.workdir:
      io_utils.append_jsonl(self._path('episodes.jsonl'), record)
      self._summaries(record)
      if (state.episode % int(c.search.checkpoint_every) == 0 or
          state.episode == int(c.search.episodes)):
        self._episode_var.assign(state.episode)
        self._checkpointer.save(global_step=self.learner.train_step)
        io_utils.write_json_atomic(self._path('search_state.json'),
                                   dataclasses.asdict(state))
    if self.verbose:
      best = state.best['return'] if state.best else float('nan')
      print(f'episode {state.episode}/{c.search.episodes}'
            f'{" greedy" if record["greedy"] else ""}: return '
            f'{record["return"]:.4f} sparsity {record["global_sparsity"]:.4f} '
            f'reward-acc {record["accuracies"][-1]:.4f} best {best:.4f} '
            f'{record["wall_s"]:.1f}s/episode', flush=True)

  def _summaries(self, record: dict):
    with self._writer.as_default():
      first = self.state.env_steps - len(record['rewards'])
      for k, r in enumerate(record['rewards']):
        tf.summary.scalar('search/step_reward', r, step=first + k)
      step = record['episode']
      tf.summary.scalar('search/episode_return', record['return'], step=step)
      tf.summary.scalar('search/global_sparsity', record['global_sparsity'],
                        step=step)
      tf.summary.scalar('search/final_reward_accuracy',
                        record['accuracies'][-1], step=step)
      tf.summary.scalar('search/epsilon', record['epsilon'], step=step)
      if record['agent_loss'] is not None:
        tf.summary.scalar('search/agent_loss', record['agent_loss'], step=step)
      if self.state.best is not None:
        for name, s in zip(self.names, self.state.best['sparsity']):
          tf.summary.scalar(f'best_policy/{name}', s, step=step)
    self._writer.flush()

  def policy(self, model: keras.Model) -> policy_lib.Policy:
    """The best episode as a `Policy` for `model` (the searched model).

    With `search.fit_to_target` the episode's sparsities are rescaled to meet
    the target exactly (`allocation.fit_to_target`); the episode's own values
    stay in the policy's metrics as `episode_sparsity`.
    """
    best = self.state.best
    if best is None:
      raise ValueError('no episode has met the sparsity budget yet')
    found = dict(zip(self.names, best['sparsity']))
    chosen = (allocation.fit_to_target(self.env.infos, found, self.target)
              if self.config.search.fit_to_target else found)
    return policy_lib.Policy(
        chosen, policy_lib.fingerprint(model),
        {'target_sparsity': self.target,
         'global_sparsity': pruning.global_sparsity(self.env.infos, chosen),
         'episode_global_sparsity': best['global_sparsity'],
         'episode_sparsity': found,
         'reward_accuracy': best['accuracies'][-1], 'return': best['return'],
         'episode': best['episode'],
         'dense_reward_accuracy': self.env.dense_accuracy})

  def save_policy(self, pol: policy_lib.Policy):
    """Writes policy.json and the greedy agent policy to the workdir."""
    pol.save(self._path('policy.json'))
    with warnings.catch_warnings():
      # The saved policy's action spec is a tfp type; loading it needs
      # tf_agents imported, which PolicySaver's users do anyway.
      warnings.filterwarnings('ignore', 'Encoding a StructuredValue')
      verbosity = logging.get_verbosity()
      # tf-agents' input names ('0/step_type') make TF warn once per input.
      logging.set_verbosity(logging.ERROR)
      try:
        policy_saver.PolicySaver(self.learner.agent.policy, batch_size=None).save(
            self._path('greedy_policy'))
      finally:
        logging.set_verbosity(verbosity)
