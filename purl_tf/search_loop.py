"""The PuRL search loop: the episodes, before the selection stage.

Everything is built first (environment, agent, outputs); `run()` is then a
short loop: play an episode, train the agent, log, keep the candidates,
checkpoint. `purl_tf/selection.py` then chooses the result among the
candidates, and `policy()` turns it into a `Policy`; `purl_tf/pipeline.py`
runs the three for every caller.

The first episodes play the references: each allocation named in
`search.references` is played once (relative actions: all neutral with that
allocation as the reference; absolute: the nearest grid values), marked
`demo` in the episode records. With `env.reference='best'` the best of them
becomes the reference of every later episode. Episodes that meet the
sparsity budget rank by `select.episode_score`: the final reward-split
accuracy (default) or the return (the paper's rule).

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
from typing import Callable, Dict, List, Optional

from absl import logging
import numpy as np
from tf_agents.policies import policy_saver
from tf_agents.utils import common

from purl_tf import agent as agent_lib
from purl_tf import env as env_lib
from purl_tf import allocation, io_utils, policy as policy_lib, progress, pruning
from purl_tf import reward as reward_lib
from purl_tf import selection, strategies, tflite_export
from purl_tf.compat import keras, tf


@dataclasses.dataclass
class SearchState:
  """What the loop carries from one episode to the next (and across resumes)."""
  episode: int = 0
  env_steps: int = 0
  best: Optional[dict] = None
  search_s: float = 0.0
  # References played so far: {allocation name: episode score}.
  demos: dict = dataclasses.field(default_factory=dict)
  # The selection stage's candidates: the references and the best other
  # episodes (as `best` holds them, with 'demo' for a reference).
  candidates: list = dataclasses.field(default_factory=list)
  # Its short round (purl_tf/selection.py): each candidate's reward-split
  # accuracy by episode number, and which examples it classified right
  # (`selection.pack_correct`), for the paired test of `selection.choose`.
  short: dict = dataclasses.field(default_factory=dict)
  short_correct: dict = dataclasses.field(default_factory=dict)
  # References that needed a measurement (sensitivity): {name: allocation},
  # so a resumed search plays what it scanned before.
  scanned: dict = dataclasses.field(default_factory=dict)
  # Its final round: each finalist's reward-split accuracy after the final
  # fine-tune and its per-example correctness, its mean and per-example
  # cross-entropy (`selection.pack_floats`), by episode number, and the
  # seconds those fine-tunes took.
  finalists: dict = dataclasses.field(default_factory=dict)
  finalists_correct: dict = dataclasses.field(default_factory=dict)
  finalists_loss: dict = dataclasses.field(default_factory=dict)
  finalists_loss_examples: dict = dataclasses.field(default_factory=dict)
  finalists_s: float = 0.0


# Allocations search.references and env.reference may name: the free ones,
# and sensitivity, which the search measures with its own environment
# (`PruningEnv.sensitivity_scan`) before the first episode.
REFERENCE_METHODS = allocation.FREE_METHODS + ('sensitivity',)


def build_env(model: keras.Model, train_ds, reward_ds, config,
              strategy=None, lr_scale: float = 1.0) -> env_lib.PruningEnv:
  """The PuRL environment for a trained model and a purl_tf config.

  `lr_scale` multiplies `search.learning_rate` (for a scaled global batch).
  """
  c = config
  # Ranked by their final accuracy, episodes are measured on the whole
  # reward split at their last step; ranked by return, like every step.
  final_eval = (0 if c.select.episode_score == 'final_accuracy' else
                int(c.search.eval_batches))
  return env_lib.PruningEnv(
      model, train_ds, reward_ds, reward_lib.from_config(c.reward),
      float(c.prune.sparsity), strategy=strategy,
      action_space=str(c.env.action_space), grid=env_lib.action_grid(
          *c.env.grid), scales=env_lib.scale_grid(*c.env.scales),
      finetune_steps=int(c.search.finetune_steps),
      subset_batches=int(c.search.subset_batches),
      eval_batches=int(c.search.eval_batches),
      final_eval_batches=final_eval,
      learning_rate=float(c.search.learning_rate) * lr_scale,
      frequency=int(c.env.frequency), seed=int(c.seed),
      bn_batches=int(c.search.bn_batches), budget=str(c.prune.budget))


def _grid(value, key: str, make):
  try:
    low, high, step = (float(x) for x in value)
  except (TypeError, ValueError):
    raise ValueError(f'{key} must be (smallest, largest, step), got '
                     f'{value!r}') from None
  try:
    return make(low, high, step)
  except ValueError as e:
    raise ValueError(f'{key}: {e}') from None


def check_config(config):
  """Checks the search's config values that need no model or data.

  The command line, the Python API and the benchmark call it before any
  training, so a bad value costs the user nothing.

  Raises:
    ValueError: naming the bad key.
  """
  c, sel = config, config.select
  pruning.check_budget(str(c.prune.budget))
  strategies.check_kind(str(c.agent.kind))
  target = float(c.prune.sparsity)
  if not 0.0 <= target < 1.0:
    raise ValueError(f'prune.sparsity {target} is outside [0, 1)')
  if str(c.env.action_space) not in env_lib.ACTION_SPACES:
    raise ValueError(f'env.action_space must be one of {env_lib.ACTION_SPACES},'
                     f' got {c.env.action_space!r}')
  for key, allowed in (('episode_score', selection.EPISODE_SCORES),
                       ('score', selection.SCORES),
                       ('incumbent', selection.INCUMBENTS)):
    if str(sel[key]) not in allowed:
      raise ValueError(f'select.{key} must be one of {allowed}, got '
                       f'{sel[key]!r}')
  if int(c.search.episodes) < 0:
    raise ValueError(f'search.episodes must be >= 0, got {c.search.episodes}')
  for key in ('top_episodes', 'finalists'):
    if int(sel[key]) < 0:
      raise ValueError(f'select.{key} must be >= 0, got {sel[key]}')
  if int(sel.short_steps) != 0 and int(sel.short_steps) < 15:
    # Its ramp re-masks in 10 stages: at least one batch each.
    raise ValueError('select.short_steps must be 0 or >= 15, got '
                     f'{sel.short_steps}')
  _grid(c.env.scales, 'env.scales', env_lib.scale_grid)
  grid = _grid(c.env.grid, 'env.grid', env_lib.action_grid)
  names = parse_references(str(c.search.references))
  if int(c.search.episodes) == 0 and (
      not names or int(sel.finalists) < len(names)):
    # No episode: the references are the candidates, and only the final
    # fine-tune can choose among them.
    raise ValueError(
        'search.episodes=0 (no episode: every reference gets the final '
        'fine-tune and the best on the reward split is the result) needs '
        'allocations in search.references and select.finalists at least '
        f'their number ({len(names)}), got select.finalists={sel.finalists}')
  if (len(names) + int(sel.top_episodes) > 1 and not int(sel.short_steps)
      and not int(sel.finalists)):
    raise ValueError(
        'the selection stage has several candidates (search.references and '
        'select.top_episodes) and nothing to score them: set '
        'select.short_steps >= 15 or select.finalists >= 1')
  if c.env.reference != 'best':
    parse_references(str(c.env.reference))
  if c.env.action_space == 'relative':
    if c.env.reference == 'best' and not names:
      raise ValueError("env.reference='best' needs at least one allocation in "
                       'search.references')
  else:
    env_lib.check_reachable(grid, target)
  reward_lib.from_config(c.reward)
  tflite_export.parse_formats(c.export.tflite)


def parse_references(names: str) -> List[str]:
  """The allocations named in a comma-separated string, in order.

  Raises:
    ValueError: a name that is not in `REFERENCE_METHODS` or is listed twice.
  """
  listed = [n.strip() for n in names.split(',') if n.strip()]
  for n in listed:
    if n not in REFERENCE_METHODS and not allocation.is_free(n):
      raise ValueError(f'unknown reference allocation {n!r} (search.references'
                       f' / env.reference); one of {REFERENCE_METHODS}, or a '
                       'blend of free ones such as lamp+erk (lamp+erk+erk '
                       'weighs ERK twice)')
  if len(set(listed)) != len(listed):
    raise ValueError(f'search.references lists an allocation twice: {names!r}')
  return listed


def reference_allocations(names: str, model: keras.Model, target: float,
                          budget: str = 'params'
                          ) -> Dict[str, Optional[Dict[str, float]]]:
  """`{name: allocation}` of the comma-separated allocations `names`, in
  order, each meeting `target` in `budget`; a measured one (sensitivity)
  maps to None until `SearchLoop` scans."""
  return {n: (None if n == 'sensitivity' else
              allocation.allocate(n, model, target, budget=budget))
          for n in parse_references(names)}


class SearchLoop:
  """Runs episodes of a `PruningEnv` with a DQN `Learner`.

  Args:
    env: the environment.
    config: a purl_tf config (its `search`, `select` and `agent` parts),
      checked by `check_config` (the caller's, before any training).
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
    self.target = env.target_sparsity
    self.names = [i.name for i in env.infos]
    self._episode_var = tf.Variable(0, dtype=tf.int64, trainable=False)
    self.episode_score = str(config.select.episode_score)
    # The wrapped model still holds the dense weights (every target 0).
    self.budget = env.budget
    self.demos = reference_allocations(str(config.search.references),
                                       self.env.model, self.target,
                                       self.budget)
    self.fixed_reference = str(config.env.reference)
    self.fixed_map = {}
    if self.fixed_reference != 'best':
      self.fixed_map = reference_allocations(self.fixed_reference,
                                             self.env.model, self.target,
                                             self.budget)
    self._writer = self._checkpointer = None
    if workdir:
      self._checkpointer = common.Checkpointer(
          ckpt_dir=os.path.join(workdir, 'checkpoints'), max_to_keep=1,
          agent=self.learner.agent, replay_buffer=self.learner.replay,
          epsilon=self.learner.epsilon, episode=self._episode_var,
          global_step=self.learner.train_step)
      # The event file is opened at the first summary, so that a resume
      # refused by restore() leaves the workdir as it was.

  def reference_name(self, episode: int) -> str:
    """The allocation episode `episode` plays or scales."""
    names = list(self.demos)
    if episode < len(names):
      return names[episode]
    if self.fixed_reference != 'best':
      return self.fixed_reference
    # The best reference; ties go to the first listed.
    return max(names, key=lambda n: (self.state.demos[n], -names.index(n)))

  def _reference_map(self, name: str):
    return self.demos[name] if name in self.demos else self.fixed_map[name]

  def _measure_references(self, measure: bool = True):
    """Fills in the references that need a measurement (sensitivity).

    The scan costs about as much as a few episodes (one BatchNormalization
    re-estimate and evaluation per layer and grid value: 97 on fmnist_resnet,
    87 s where an episode takes 34 s) and is counted in the search time. Its allocation is kept
    in the state, so a resumed search neither repeats nor changes it.

    Args:
      measure: scan when the state has no allocation yet (False: only take
        what the state holds, as `restore()` does).
    """
    # Only the references the episode budget plays (all of them without
    # episodes: they are the candidates), and a fixed reference.
    played = list(self.demos)[:int(self.config.search.episodes) or None]
    wanted = [n for n in played if self.demos[n] is None] + [
        n for n, m in self.fixed_map.items() if m is None]
    for name in wanted:
      if name not in self.state.scanned and measure:
        t0 = time.perf_counter()
        scan = self.env.sensitivity_scan(allocation.grid_for_target(
            allocation.SENSITIVITY_GRID, self.target))
        self.state.scanned[name] = allocation.pick_by_sensitivity(
            self.env.infos, scan, self.target, budget=self.budget)
        self.state.search_s += time.perf_counter() - t0
        if self.verbose:
          print(f'{name} scan: {time.perf_counter() - t0:.1f}s', flush=True)
      if name in self.state.scanned:
        for maps in (self.demos, self.fixed_map):
          if name in maps:
            maps[name] = dict(self.state.scanned[name])

  def _demo_actions(self, sparsity) -> list:
    """The actions that play allocation `sparsity` as a reference episode."""
    if self.env.action_space == 'relative':
      return [self.env.neutral_action] * len(self.names)
    grid = np.asarray(self.env.grid)
    return [int(np.argmin(np.abs(grid - sparsity[n]))) for n in self.names]

  def _stick_actions(self, seed: int):
    """A measuring stick's actions for an episode (None: the agent acts)."""
    kind = str(self.config.agent.kind)
    if kind not in strategies.STICKS:
      return None
    rng = np.random.RandomState(seed)
    n = len(self.env.grid)
    if kind == 'random':
      return strategies.random_actions(n, len(self.names), rng)
    best = self.state.best or {}
    incumbent = best.get('actions') or [self.env.neutral_action] * len(self.names)
    return strategies.local_move(incumbent, n, rng)

  def _score(self, record: dict) -> float:
    return (record['final_accuracy'] if self.episode_score == 'final_accuracy'
            else record['return'])

  def _path(self, name):
    return os.path.join(self.workdir, name)

  def save_state(self):
    """Writes search_state.json (with a workdir): after each checkpoint and
    each score of the selection stage (purl_tf/selection.py)."""
    if self.workdir:
      io_utils.write_json_atomic(self._path('search_state.json'),
                                 dataclasses.asdict(self.state))

  def restore(self) -> bool:
    """Continues from the workdir's last checkpoint; False when there is none."""
    if not self.workdir or not os.path.exists(self._path('search_state.json')):
      return False
    self.state = self._read_state()
    self._measure_references(measure=False)
    self._checkpointer.initialize_or_restore()
    if int(self._episode_var.numpy()) != self.state.episode:
      raise ValueError(
          f'checkpoint is at episode {int(self._episode_var.numpy())} but '
          f'search_state.json at {self.state.episode}; remove the workdir '
          'or pass --overwrite')
    # Lines past the checkpoint belong to an episode that will be replayed
    # (or are what a crash left half-written): dropped, not decoded.
    rows = io_utils.read_jsonl(self._path('episodes.jsonl'),
                               limit=self.state.episode)
    if len(rows) < self.state.episode:
      raise ValueError(
          f'{self._path("episodes.jsonl")} holds {len(rows)} episodes but the '
          f'checkpoint {self.state.episode}; pass --overwrite to start again')
    with open(self._path('episodes.jsonl'), 'w') as f:
      f.writelines(json.dumps(r, sort_keys=True) + '\n' for r in rows)
    return True

  def _read_state(self) -> SearchState:
    path = self._path('search_state.json')
    fix = 'the search cannot resume from it; pass --overwrite to start again'
    try:
      with open(path) as f:
        obj = json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f'{path} is damaged ({e.msg}); {fix}') from None
    if not isinstance(obj, dict):
      raise ValueError(f'{path} holds no search state; {fix}')
    unknown = sorted(set(obj) - {f.name for f in dataclasses.fields(SearchState)})
    if unknown:
      raise ValueError(f'{path} has unknown keys {unknown} (another purl_tf '
                       f'version?); {fix}')
    return SearchState(**obj)

  def run(self, on_episode: Optional[Callable[[dict], None]] = None) -> SearchState:
    """Plays episodes up to `config.search.episodes`; returns the state.

    Args:
      on_episode: called with each finished episode's record (benchmarks
        sample memory there).
    """
    c = self.config
    episodes = int(c.search.episodes)
    if not episodes:
      return self._references_only()
    if self.verbose:
      print(f'searching {len(self.names)} layers for {episodes} episodes '
            f'(target sparsity {self.target:.3f}, dense reward accuracy '
            f'{self.env.dense_accuracy:.4f})', flush=True)
    self._measure_references()
    for episode in range(self.state.episode, episodes):
      record = self._episode(episode)
      self._log(record)
      if on_episode is not None:
        on_episode(record)
    if self.state.best is None:
      raise ValueError(
          f'no episode met the sparsity budget {self.target} within '
          f'{pruning.TARGET_TOLERANCE}; check env.action_space and '
          'prune.sparsity, or run more episodes')
    return self.state

  def _references_only(self) -> SearchState:
    """`search.episodes=0`: the references are the candidates, unplayed.

    Every one is a finalist (`check_config`), so playing them would change
    nothing the final round reads. Candidate `i` is reference `i`, numbered
    as its episode would be; its episode fields (return, accuracies) are
    None.
    """
    self._measure_references()
    state = self.state
    if not state.candidates:  # a resumed run keeps its own
      for i, (name, alloc) in enumerate(self.demos.items()):
        state.candidates.append({
            'episode': i, 'demo': True, 'reference': name,
            'sparsity': [float(alloc[n]) for n in self.names],
            'global_sparsity': float(pruning.budget_sparsity(
                self.env.infos, alloc, self.budget)),
            'accuracies': [], 'final_accuracy': None, 'return': None})
      # The first reference holds until the selection stage chooses.
      state.best = dict(state.candidates[0])
      del state.best['demo']
      self.save_state()
    if self.verbose:
      print(f'no search episodes: the {len(self.demos)} references '
            f'({", ".join(self.demos)}) are the candidates for the target '
            f'sparsity {self.target:.3f}', flush=True)
    return state

  def allocation_of(self, record: dict) -> Dict[str, float]:
    """The allocation that episode `record` (or a candidate) stands for.

    A reference's episode stands for that allocation itself: the episode's
    sparsities went through the action mapping's clamp, which moves them by
    about 1e-6, and at 98% a single weight kept or cut while the final
    fine-tune ramps moves test accuracy by up to 1 pt. So a search that
    returns a reference returns exactly the allocation `purl-prune
    --allocation=NAME` prunes, and the two fine-tune alike. Another
    episode's sparsities are rescaled to meet the target exactly (the
    absolute grid's clamp overshoots it), so that every method is compared
    at one sparsity.
    """
    if int(record['episode']) < len(self.demos):
      return dict(self.demos[record['reference']])
    return allocation.fit_to_target(
        self.env.infos, dict(zip(self.names, record['sparsity'])), self.target,
        budget=self.budget)

  def _keep_candidate(self, record: dict, best: dict):
    """Keeps the references and the `select.top_episodes` best other
    episodes (distinct allocations) as the selection stage's candidates."""
    k = int(self.config.select.top_episodes)
    # One candidate per allocation: a reference first, then the best score,
    # then the earliest episode.
    unique = {}
    for cand in self.state.candidates + [dict(best, demo=record['demo'])]:
      key = tuple(round(float(x), 4) for x in cand['sparsity'])
      rank = (cand['demo'], self._score(cand), -cand['episode'])
      old = unique.get(key)
      if old is None or rank > (old['demo'], self._score(old), -old['episode']):
        unique[key] = cand
    demos = [x for x in unique.values() if x['demo']]
    others = sorted((x for x in unique.values() if not x['demo']),
                    key=lambda x: (-self._score(x), x['episode']))[:k]
    self.state.candidates = sorted(demos + others, key=lambda x: x['episode'])

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
    demo = episode < len(self.demos)
    greedy = (not demo and self.learner.learns and bool(every) and
              (episode + 1) % every == 0)
    reference = self.reference_name(episode) if (
        demo or self.env.action_space == 'relative') else ''
    if self.env.action_space == 'relative':
      self.env.set_reference(self._reference_map(reference))
    if demo:
      actions = self._demo_actions(self.demos[reference])
    else:
      actions = self._stick_actions(episode_seed)
    played = self.learner.run_episode(greedy=greedy, actions=actions)
    loss = (self.learner.train() if self.learner.learns and
            episode + 1 >= int(c.agent.warmup_episodes) else None)
    steps = self.env.step_log
    record = {
        'episode': episode, 'greedy': greedy, 'demo': demo,
        'reference': reference, 'epsilon': epsilon,
        'actions': played['actions'],
        'sparsity': [s['sparsity'] for s in steps],
        'rewards': played['rewards'], 'return': played['return'],
        'accuracies': [s['accuracy'] for s in steps],
        'final_accuracy': steps[-1]['accuracy'],
        'global_sparsity': self.env.reached_sparsity(),
        'diverged': any(s['diverged'] for s in steps),
        'agent_loss': loss,
        'finetune_s': sum(s['finetune_s'] for s in steps),
        'eval_s': sum(s['eval_s'] for s in steps),
        'wall_s': time.perf_counter() - t0,
    }
    state = self.state
    state.env_steps += len(steps)
    meets = (record['global_sparsity'] >=
             self.target - pruning.TARGET_TOLERANCE)
    ok = meets and not record['diverged']
    if demo:
      # A reference that misses the budget can never be the reference.
      state.demos[reference] = self._score(record) if ok else -1e9
    if ok:
      kept = {k: record[k] for k in (
          'episode', 'return', 'sparsity', 'global_sparsity', 'accuracies',
          'final_accuracy', 'reference', 'actions')}
      self._keep_candidate(record, kept)
      if state.best is None or self._score(record) > self._score(state.best):
        state.best = kept
    state.episode = episode + 1
    state.search_s += record['wall_s']
    self.records.append(record)
    return record

  def _log(self, record: dict):
    state, c = self.state, self.config
    if self.workdir:
      io_utils.append_jsonl(self._path('episodes.jsonl'), record)
      self._summaries(record)
      self._episode_var.assign(state.episode)
      self._checkpointer.save(global_step=self.learner.train_step)
      self.save_state()
    if self.verbose:
      best = self._score(state.best) if state.best else float('nan')
      kind = (f' demo {record["reference"]}' if record['demo'] else
              ' greedy' if record['greedy'] else '')
      left = (int(c.search.episodes) - state.episode) * record['wall_s']
      print(f'episode {state.episode}/{c.search.episodes}{kind}: return '
            f'{record["return"]:.4f} sparsity {record["global_sparsity"]:.4f} '
            f'reward-acc {record["final_accuracy"]:.4f} best ({self.episode_score}) '
            f'{best:.4f} {record["wall_s"]:.1f}s/episode, '
            f'~{progress.format_duration(left)} left',
            flush=True)

  def _summaries(self, record: dict):
    if self._writer is None:
      self._writer = tf.summary.create_file_writer(
          os.path.join(self.workdir, 'tensorboard', 'search'))
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
    """The result (`state.best`) as a `Policy` for `model` (the searched
    model): its allocation (`allocation_of`), with the episode's own
    sparsities in the metrics as `episode_sparsity`.
    """
    best = self.state.best
    if best is None:
      raise ValueError('no episode has met the sparsity budget yet')
    found = dict(zip(self.names, best['sparsity']))
    chosen = self.allocation_of(best)
    return policy_lib.Policy(
        chosen, policy_lib.fingerprint(model),
        {'target_sparsity': self.target,
         'global_sparsity': pruning.global_sparsity(self.env.infos, chosen),
         'budget': self.budget,
         'budget_sparsity': pruning.budget_sparsity(self.env.infos, chosen,
                                                    self.budget),
         'episode_global_sparsity': best['global_sparsity'],
         'episode_sparsity': found,
         'reward_accuracy': best['final_accuracy'], 'return': best['return'],
         'episode': best['episode'], 'reference': best.get('reference', ''),
         'references': dict(self.state.demos),
         'episode_score': self.episode_score,
         'short_accuracy': best.get('short_accuracy'),
         'finalist_accuracy': best.get('finalist_accuracy'),
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
