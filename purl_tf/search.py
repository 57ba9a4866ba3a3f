"""`purl-search`: the PuRL search loop, then the final stage.

Everything is built first (data, dense model, environment, agent, outputs);
then a short loop: play an episode, train the agent, log, keep the best
episode, checkpoint. The best episode (highest return among those that meet
the sparsity budget) is the policy; it is fine-tuned properly, evaluated on the
test split, stripped and exported by `experiment.finish`.

Outputs in the workdir:
  policy.json         per-layer sparsity of the best episode and its metrics
  episodes.jsonl      one line per finished episode
  search_state.json   episode counter and best so far (for --resume)
  checkpoints/        agent, replay buffer, epsilon (tf-agents Checkpointer)
  greedy_policy/      the greedy policy (tf-agents PolicySaver)
  tensorboard/search  per-step reward, episode return, epsilon, agent loss,
                      best policy's per-layer sparsity
  summary.json, export/  as from purl-prune
"""

import dataclasses
import json
import os
import time
import warnings
from typing import Optional

from tf_agents.policies import policy_saver
from tf_agents.utils import common

from purl_tf import agent as agent_lib
from purl_tf import env as env_lib
from purl_tf import experiment, io_utils, policy as policy_lib, reward as reward_lib
from purl_tf.compat import tf


@dataclasses.dataclass
class SearchState:
  """What the loop carries from one episode to the next (and across resumes)."""
  episode: int = 0
  env_steps: int = 0
  best: Optional[dict] = None
  search_s: float = 0.0


def build_env(ctx: experiment.Context) -> env_lib.PruningEnv:
  """The PuRL environment for a prepared run."""
  c = ctx.config
  grid = env_lib.action_grid(c.env.action_min, c.env.action_max, c.env.action_step)
  return env_lib.PruningEnv(
      ctx.dense, ctx.splits.train, ctx.splits.reward,
      reward_lib.from_config(c.reward), float(c.prune.sparsity),
      strategy=ctx.strategy, grid=grid, clamp=bool(c.env.budget_clamp),
      finetune_steps=int(c.search.finetune_steps),
      subset_batches=int(c.search.subset_batches),
      eval_batches=int(c.search.eval_batches),
      learning_rate=float(c.search.learning_rate),
      nan_penalty=float(c.search.nan_penalty),
      frequency=int(c.env.frequency), seed=int(c.seed))


def _is_better(record: dict, best: Optional[dict], target: float, tol: float) -> bool:
  if record['global_sparsity'] < target - tol:
    return False
  return best is None or record['return'] > best['return']


def _write_summaries(writer, record, state, loss, epsilon, env):
  with writer.as_default():
    first = state.env_steps - len(record['rewards'])
    for k, r in enumerate(record['rewards']):
      tf.summary.scalar('search/step_reward', r, step=first + k)
    step = record['episode']
    tf.summary.scalar('search/episode_return', record['return'], step=step)
    tf.summary.scalar('search/global_sparsity', record['global_sparsity'], step=step)
    tf.summary.scalar('search/final_reward_accuracy', record['accuracies'][-1], step=step)
    tf.summary.scalar('search/epsilon', epsilon, step=step)
    if loss is not None:
      tf.summary.scalar('search/agent_loss', loss, step=step)
    if state.best is not None:
      for name, s in zip([i.name for i in env.infos], state.best['sparsity']):
        tf.summary.scalar(f'best_policy/{name}', s, step=step)
  writer.flush()


def run_search(config, workdir: str, *, resume: bool = False,
               overwrite: bool = False, verbose: int = 2) -> dict:
  """Runs the PuRL search and the final stage; returns the summary dict.

  Args:
    config: a purl_tf config.
    workdir: output directory (see the module docstring).
    resume: continue the run in `workdir` from its last checkpoint.
    overwrite: replace a different run in `workdir`.
    verbose: Keras progress output of the dense training and final fine-tune.

  Raises:
    ValueError: bad config, data or workdir.
  """
  start = time.perf_counter()
  c = config
  experiment.prepare_workdir(workdir, c, kind='search', overwrite=overwrite,
                             resume=resume)
  ctx = experiment.prepare(c, workdir, verbose=verbose)
  env = build_env(ctx)
  learner = agent_lib.Learner(env, c.agent)
  target = float(c.prune.sparsity)
  tol = float(c.search.sparsity_tolerance)
  episodes_path = os.path.join(workdir, 'episodes.jsonl')
  state_path = os.path.join(workdir, 'search_state.json')
  episode_var = tf.Variable(0, dtype=tf.int64, trainable=False)
  checkpointer = common.Checkpointer(
      ckpt_dir=os.path.join(workdir, 'checkpoints'), max_to_keep=1,
      agent=learner.agent, replay_buffer=learner.replay,
      epsilon=learner.epsilon, episode=episode_var,
      global_step=learner.train_step)
  state = SearchState()
  if resume and os.path.exists(state_path):
    checkpointer.initialize_or_restore()
    with open(state_path) as f:
      state = SearchState(**json.load(f))
    if int(episode_var.numpy()) != state.episode:
      raise ValueError(f'checkpoint is at episode {int(episode_var.numpy())} '
                       f'but search_state.json at {state.episode}')
    # Lines past the checkpoint belong to an episode that will be replayed.
    rows = io_utils.read_jsonl(episodes_path)[:state.episode]
    with open(episodes_path, 'w') as f:
      f.writelines(json.dumps(r, sort_keys=True) + '\n' for r in rows)
    print(f'resuming at episode {state.episode}', flush=True)
  writer = tf.summary.create_file_writer(os.path.join(workdir, 'tensorboard', 'search'))
  names = [i.name for i in env.infos]
  print(f'searching {len(names)} layers for {c.search.episodes} episodes '
        f'(target sparsity {target:.3f}, dense reward accuracy '
        f'{env.dense_accuracy:.4f})', flush=True)

  for episode in range(state.episode, int(c.search.episodes)):
    t0 = time.perf_counter()
    epsilon = agent_lib.epsilon_at(episode, c.agent)
    learner.epsilon.assign(epsilon)
    greedy = bool(c.search.greedy_every) and (episode + 1) % int(c.search.greedy_every) == 0
    played = learner.run_episode(greedy=greedy)
    loss = learner.train() if episode + 1 >= int(c.agent.warmup_episodes) else None
    steps = env.step_log
    state.env_steps += len(steps)
    record = {
        'episode': episode, 'greedy': greedy, 'epsilon': epsilon,
        'actions': played['actions'],
        'sparsity': [s['sparsity'] for s in steps],
        'rewards': played['rewards'], 'return': played['return'],
        'accuracies': [s['accuracy'] for s in steps],
        'global_sparsity': env.reached_sparsity(),
        'diverged': any(s['diverged'] for s in steps),
        'agent_loss': loss,
        'finetune_s': sum(s['finetune_s'] for s in steps),
        'eval_s': sum(s['eval_s'] for s in steps),
        'wall_s': time.perf_counter() - t0,
    }
    if _is_better(record, state.best, target, tol) and not record['diverged']:
      state.best = {k: record[k] for k in ('episode', 'return', 'sparsity',
                                           'global_sparsity', 'accuracies')}
    state.episode = episode + 1
    state.search_s += record['wall_s']
    io_utils.append_jsonl(episodes_path, record)
    _write_summaries(writer, record, state, loss, epsilon, env)
    if state.episode % int(c.search.checkpoint_every) == 0 or (
        state.episode == int(c.search.episodes)):
      episode_var.assign(state.episode)
      checkpointer.save(global_step=learner.train_step)
      io_utils.write_json_atomic(state_path, dataclasses.asdict(state))
    best = state.best['return'] if state.best else float('nan')
    print(f'episode {episode + 1}/{c.search.episodes}'
          f'{" greedy" if greedy else ""}: return {record["return"]:.4f} '
          f'sparsity {record["global_sparsity"]:.4f} reward-acc '
          f'{record["accuracies"][-1]:.4f} best {best:.4f} '
          f'{record["wall_s"]:.1f}s/episode', flush=True)

  if state.best is None:
    raise ValueError(
        f'no episode met the sparsity budget {target} within {tol}; enable '
        '--config.env.budget_clamp=True or run more episodes')
  pol = policy_lib.Policy(
      dict(zip(names, state.best['sparsity'])), policy_lib.fingerprint(ctx.dense),
      {'target_sparsity': target, 'global_sparsity': state.best['global_sparsity'],
       'reward_accuracy': state.best['accuracies'][-1],
       'return': state.best['return'], 'episode': state.best['episode'],
       'dense_reward_accuracy': env.dense_accuracy})
  pol.save(os.path.join(workdir, 'policy.json'))
  with warnings.catch_warnings():
    # The saved policy's action spec is a tfp type; loading it needs tf_agents
    # imported, which PolicySaver's users do anyway.
    warnings.filterwarnings('ignore', 'Encoding a StructuredValue')
    policy_saver.PolicySaver(learner.agent.policy, batch_size=None).save(
        os.path.join(workdir, 'greedy_policy'))
  shown = {k: round(v, 3) for k, v in list(pol.sparsity.items())[:8]}
  more = f' (+{len(names) - 8} more in policy.json)' if len(names) > 8 else ''
  print(f'best policy from episode {state.best["episode"] + 1}: {shown}{more}',
        flush=True)
  return experiment.finish(
      ctx, pol.sparsity, target=target, method='purl', verbose=verbose,
      started=start, extra={'search': {
          'episodes': state.episode, 'best_episode': state.best['episode'],
          'search_s': state.search_s, 'env_steps': state.env_steps,
          'policy': os.path.abspath(os.path.join(workdir, 'policy.json'))}})
