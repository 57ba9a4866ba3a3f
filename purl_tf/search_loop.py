"""The PuRL search loop, shared by `purl-search` and `purl_tf.search()`.

Everything is built first (environment, agent, outputs); `run()` is then a
short loop: play an episode, train the agent, log, keep the best episode,
checkpoint. `policy()` turns the best episode into a `Policy`.

The first episodes are demonstrations: each free allocation named in
`search.references` is played once (relative actions: all neutral with that
allocation as the reference; absolute: the nearest grid values). With
`env.reference='best'` the best of them becomes the reference of every later
episode. The best episode is, among those that meet the sparsity budget, the
one with the best `search.select` score: the final reward-split accuracy
(default) or the return (the paper's rule).

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
from purl_tf import rerank as rerank_lib
from purl_tf import reward as reward_lib
from purl_tf.compat import keras, tf


@dataclasses.dataclass
class SearchState:
  """What the loop carries from one episode to the next (and across resumes)."""
  episode: int = 0
  env_steps: int = 0
  best: Optional[dict] = None
  search_s: float = 0.0
  # Demonstrations played so far: {allocation name: selection score}.
  demos: dict = dataclasses.field(default_factory=dict)
  # With search.rerank: the demonstrations and the best other episodes (as
  # `best` holds them), and their re-ranking accuracy by episode number.
  candidates: list = dataclasses.field(default_factory=list)
  reranked: dict = dataclasses.field(default_factory=dict)
  # Which reward examples each candidate classified right after its ramp
  # (`rerank.pack_correct`), for the paired test of `rerank.choose`.
  reranked_correct: dict = dataclasses.field(default_factory=dict)
  # Demonstrations that needed a measurement (sensitivity): {name:
  # allocation}, so a resumed search plays what it scanned before.
  scanned: dict = dataclasses.field(default_factory=dict)
  # With search.finalists (purl_tf/finalists.py): each finalist's reward-split
  # accuracy after the final fine-tune and its per-example correctness, its
  # mean and per-example cross-entropy (`rerank.pack_floats`), by episode
  # number, and the seconds those fine-tunes took.
  finalists: dict = dataclasses.field(default_factory=dict)
  finalists_correct: dict = dataclasses.field(default_factory=dict)
  finalists_loss: dict = dataclasses.field(default_factory=dict)
  finalists_loss_examples: dict = dataclasses.field(default_factory=dict)
  finalists_s: float = 0.0


SELECT_RULES = ('final_accuracy', 'return')
# search.finalist_score: what the finalists are compared by on the reward
# split after their final fine-tune (purl_tf/finalists.py).
FINALIST_SCORES = ('accuracy', 'loss')
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
  grid = env_lib.action_grid(c.env.action_min, c.env.action_max,
                             c.env.action_step)
  scales = env_lib.scale_grid(c.env.scale_min, c.env.scale_max,
                              c.env.scale_step)
  final_eval = int(c.search.final_eval_batches)
  if final_eval < 0:
    final_eval = int(c.search.eval_batches)
  return env_lib.PruningEnv(
      model, train_ds, reward_ds, reward_lib.from_config(c.reward),
      float(c.prune.sparsity), strategy=strategy,
      action_space=str(c.env.action_space), grid=grid, scales=scales,
      clamp=bool(c.env.budget_clamp),
      finetune_steps=int(c.search.finetune_steps),
      subset_batches=int(c.search.subset_batches),
      eval_batches=int(c.search.eval_batches),
      final_eval_batches=final_eval,
      final_finetune_steps=int(c.search.final_finetune_steps),
      learning_rate=float(c.search.learning_rate) * lr_scale,
      nan_penalty=float(c.search.nan_penalty),
      frequency=int(c.env.frequency), seed=int(c.seed),
      bn_batches=int(c.search.bn_batches))


def check_config(config):
  """Checks the search's config values that need no model or data.

  Called before any training, so a bad value costs the user nothing.

  Raises:
    ValueError: naming the bad key.
  """
  c = config
  target = float(c.prune.sparsity)
  if not 0.0 <= target < 1.0:
    raise ValueError(f'prune.sparsity {target} is outside [0, 1)')
  if str(c.env.action_space) not in env_lib.ACTION_SPACES:
    raise ValueError(f'env.action_space must be one of {env_lib.ACTION_SPACES},'
                     f' got {c.env.action_space!r}')
  if str(c.search.select) not in SELECT_RULES:
    raise ValueError(f'search.select must be one of {SELECT_RULES}, got '
                     f'{c.search.select!r}')
  if int(c.search.episodes) < 0:
    raise ValueError(f'search.episodes must be >= 0, got {c.search.episodes}')
  if int(c.search.rerank) < 0 or int(c.search.rerank_hold_steps) < 0 or (
      int(c.search.rerank) and int(c.search.rerank_ramp_steps) < 10):
    raise ValueError('search.rerank and search.rerank_hold_steps must be >= 0 '
                     'and search.rerank_ramp_steps >= 10')
  if not float(c.search.rerank_z) >= 0.0:
    raise ValueError(f'search.rerank_z must be >= 0, got {c.search.rerank_z}')
  if str(c.search.rerank_incumbent) not in rerank_lib.INCUMBENTS:
    raise ValueError('search.rerank_incumbent must be one of '
                     f'{rerank_lib.INCUMBENTS}, got {c.search.rerank_incumbent!r}')
  if str(c.search.rerank_order) not in rerank_lib.ORDERS:
    raise ValueError('search.rerank_order must be one of '
                     f'{rerank_lib.ORDERS}, got {c.search.rerank_order!r}')
  if int(c.search.finalists) < 0:
    raise ValueError(f'search.finalists must be >= 0, got {c.search.finalists}')
  if int(c.search.finalists) and not int(c.search.rerank):
    # The finalists are drawn from the candidates the re-ranking keeps.
    raise ValueError(f'search.finalists={c.search.finalists} needs '
                     'search.rerank >= 1 (the agent episodes kept as '
                     'candidates beside the demonstrations)')
  if str(c.search.finalist_score) not in FINALIST_SCORES:
    raise ValueError(f'search.finalist_score must be one of {FINALIST_SCORES}'
                     f', got {c.search.finalist_score!r}')
  if not float(c.search.finalist_z) >= 0.0:
    raise ValueError('search.finalist_z must be >= 0, got '
                     f'{c.search.finalist_z}')
  if int(c.search.rerank_draws) < 1:
    raise ValueError('search.rerank_draws must be >= 1, got '
                     f'{c.search.rerank_draws}')
  if int(c.search.checkpoint_every) < 1:
    raise ValueError('search.checkpoint_every must be >= 1, got '
                     f'{c.search.checkpoint_every}')
  env_lib.scale_grid(c.env.scale_min, c.env.scale_max, c.env.scale_step)
  grid = env_lib.action_grid(c.env.action_min, c.env.action_max,
                             c.env.action_step)
  names = parse_references(str(c.search.references))
  if int(c.search.episodes) == 0 and (
      not names or int(c.search.finalists) < len(names)):
    # No episode: the references are the candidates, and only the final
    # fine-tune can choose among them.
    raise ValueError(
        'search.episodes=0 (no episode: every reference gets the final '
        'fine-tune and the best on the reward split is the result) needs '
        'allocations in search.references and search.finalists at least '
        f'their number ({len(names)}), got search.finalists='
        f'{c.search.finalists}')
  if c.env.reference != 'best':
    parse_references(str(c.env.reference))
  try:
    scan_grid = [float(x) for x in c.search.sensitivity_grid]
  except (TypeError, ValueError):
    scan_grid = None
  if not scan_grid or not all(0.0 <= x < 1.0 for x in scan_grid):
    raise ValueError('search.sensitivity_grid must be a non-empty list of '
                     f'sparsities in [0, 1), got {c.search.sensitivity_grid!r}')
  if c.env.action_space == 'relative':
    if c.env.reference == 'best' and not names:
      raise ValueError("env.reference='best' needs at least one allocation in "
                       'search.references')
  else:
    env_lib.check_reachable(grid, target, bool(c.env.budget_clamp))
  reward_lib.from_config(c.reward)


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


def reference_allocations(names: str, model: keras.Model,
                          target: float) -> Dict[str, Optional[Dict[str, float]]]:
  """`{name: allocation}` of the comma-separated allocations `names`, in
  order; a measured one (sensitivity) maps to None until `SearchLoop` scans."""
  return {n: (None if n == 'sensitivity' else
              allocation.allocate(n, model, target))
          for n in parse_references(names)}


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
    # The same checks purl-search and purl_tf.search run before training;
    # here for callers that build the loop themselves (the benchmark).
    check_config(config)
    self.select = str(config.search.select)
    # The wrapped model still holds the dense weights (every target 0).
    self.demos = reference_allocations(str(config.search.references),
                                       self.env.model, self.target)
    self.fixed_reference = str(config.env.reference)
    self.fixed_map = {}
    if self.fixed_reference != 'best':
      self.fixed_map = reference_allocations(self.fixed_reference,
                                             self.env.model, self.target)
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
    # The best demonstration; ties go to the first listed.
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
    # Only the demonstrations the episode budget plays (all of them without
    # episodes: they are the candidates), and a fixed reference.
    played = list(self.demos)[:int(self.config.search.episodes) or None]
    wanted = [n for n in played if self.demos[n] is None] + [
        n for n, m in self.fixed_map.items() if m is None]
    for name in wanted:
      if name not in self.state.scanned and measure:
        t0 = time.perf_counter()
        scan = self.env.sensitivity_scan(allocation.grid_for_target(
            self.config.search.sensitivity_grid, self.target))
        self.state.scanned[name] = allocation.pick_by_sensitivity(
            self.env.infos, scan, self.target)
        self.state.search_s += time.perf_counter() - t0
        if self.verbose:
          print(f'{name} scan: {time.perf_counter() - t0:.1f}s', flush=True)
      if name in self.state.scanned:
        for maps in (self.demos, self.fixed_map):
          if name in maps:
            maps[name] = dict(self.state.scanned[name])

  def _demo_actions(self, sparsity) -> list:
    """The actions that play allocation `sparsity` as a demonstration."""
    if self.env.action_space == 'relative':
      return [self.env.neutral_action] * len(self.names)
    grid = np.asarray(self.env.grid)
    return [int(np.argmin(np.abs(grid - sparsity[n]))) for n in self.names]

  def _score(self, record: dict) -> float:
    return (record['final_accuracy'] if self.select == 'final_accuracy'
            else record['return'])

  def _path(self, name):
    return os.path.join(self.workdir, name)

  def save_state(self):
    """Writes search_state.json (with a workdir): after each checkpoint and
    re-ranked candidate, and after stages outside `run()`
    (purl_tf/finalists.py)."""
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
          f'{self.tolerance}; check env.action_space and prune.sparsity, or '
          'run more episodes')
    self._rerank()
    return self.state

  def _references_only(self) -> SearchState:
    """`search.episodes=0`: the references are the candidates, unplayed.

    Where the agent's episodes were never the result (`fmnist_resnet`: 0 of
    30 cells, benchmarks/results/fmnist.md) and every demonstration is a
    finalist, playing the demonstrations changes nothing the choice reads:
    the final fine-tune of each (purl_tf/finalists.py) decides. Candidate
    `i` is reference `i`, numbered as its demonstration episode would be.
    Its episode fields (return, accuracies) are None.
    """
    self._measure_references()
    state = self.state
    if not state.candidates:  # a resumed run keeps its own
      for i, (name, alloc) in enumerate(self.demos.items()):
        state.candidates.append({
            'episode': i, 'demo': True, 'reference': name,
            'sparsity': [float(alloc[n]) for n in self.names],
            'global_sparsity': float(
                pruning.global_sparsity(self.env.infos, alloc)),
            'accuracies': [], 'final_accuracy': None, 'return': None})
      # The first reference holds until the finalists choose.
      state.best = dict(state.candidates[0])
      del state.best['demo']
      self.save_state()
    if self.verbose:
      print(f'no search episodes: the {len(self.demos)} references '
            f'({", ".join(self.demos)}) are the candidates for the target '
            f'sparsity {self.target:.3f}', flush=True)
    return state

  def _fitted(self, sparsity) -> Dict[str, float]:
    found = dict(zip(self.names, sparsity))
    return (allocation.fit_to_target(self.env.infos, found, self.target)
            if self.config.search.fit_to_target else found)

  def allocation_of(self, record: dict) -> Dict[str, float]:
    """The allocation that episode `record` (or a candidate) stands for.

    A demonstration stands for its free allocation itself with
    `search.exact_demonstrations`: the episode's sparsities went through the
    action mapping's clamp and `fit_to_target`, which move them by about
    1e-6, and at 98% a single weight kept or cut while the final fine-tune
    ramps moves test accuracy by up to 1 pt (benchmarks/results/fmnist.md).
    So a search that returns a demonstration returns exactly the allocation
    `purl-prune --allocation=NAME` prunes, and the two fine-tune alike.
    """
    if (bool(self.config.search.exact_demonstrations) and
        int(record['episode']) < len(self.demos)):
      return dict(self.demos[record['reference']])
    return self._fitted(record['sparsity'])

  def _keep_candidate(self, record: dict, best: dict):
    """Keeps the demonstrations and the `search.rerank` best other episodes
    (distinct allocations) for the re-ranking."""
    k = int(self.config.search.rerank)
    if not k:
      return
    # One candidate per allocation: a demonstration first, then the best
    # score, then the earliest episode.
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

  def _rerank(self):
    """Re-scores the candidates by `PruningEnv.ramp_accuracy` (a short copy
    of the final fine-tune) and makes the best of them the result.

    The search's own score (the last step's accuracy after a layer-by-layer
    episode) ranks allocations by how fast they recover from one-shot
    pruning, not by what the final fine-tune makes of them
    (benchmarks/results/proxy_*.md).
    """
    c, state = self.config, self.state
    if not int(c.search.rerank) or not state.candidates:
      return
    finalists = int(c.search.finalists)
    if finalists and len(state.candidates) <= finalists:
      # Every candidate gets the final fine-tune itself (finalists.run):
      # the short copy would change nothing.
      return
    for cand in state.candidates:
      key = str(cand['episode'])
      if key in state.reranked:
        continue
      t0 = time.perf_counter()
      correct = rerank_lib.correct_per_example(self.env, self.allocation_of(cand), c,
                               cand['episode'])
      state.reranked[key] = float(np.mean(correct)) if len(correct) else 0.0
      state.reranked_correct[key] = rerank_lib.pack_correct(correct)
      state.search_s += time.perf_counter() - t0
      self.save_state()
      if self.verbose:
        kind = f'demo {cand["reference"]}' if cand['demo'] else 'episode'
        print(f're-rank {kind} {cand["episode"] + 1}: ramp accuracy '
              f'{state.reranked[key]:.4f} ({time.perf_counter() - t0:.1f}s)',
              flush=True)
    best = rerank_lib.choose(
        state.candidates, state.reranked,
        {k: rerank_lib.unpack_correct(v)
         for k, v in state.reranked_correct.items()},
        float(c.search.rerank_z), str(c.search.rerank_incumbent))
    state.best = {k: v for k, v in best.items() if k != 'demo'}
    state.best['ramp_accuracy'] = state.reranked[str(best['episode'])]
    self.save_state()  # search_state.json names the result, as policy.json

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
    greedy = not demo and bool(every) and (episode + 1) % every == 0
    reference = self.reference_name(episode) if (
        demo or self.env.action_space == 'relative') else ''
    if self.env.action_space == 'relative':
      self.env.set_reference(self._reference_map(reference))
    played = self.learner.run_episode(
        greedy=greedy,
        actions=self._demo_actions(self.demos[reference]) if demo else None)
    loss = (self.learner.train()
            if episode + 1 >= int(c.agent.warmup_episodes) else None)
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
    meets = record['global_sparsity'] >= self.target - self.tolerance
    ok = meets and not record['diverged']
    if demo:
      # A demonstration that misses the budget can never be the reference.
      state.demos[reference] = self._score(record) if ok else -1e9
    if ok:
      kept = {k: record[k] for k in (
          'episode', 'return', 'sparsity', 'global_sparsity', 'accuracies',
          'final_accuracy', 'reference')}
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
      if (state.episode % int(c.search.checkpoint_every) == 0 or
          state.episode == int(c.search.episodes)):
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
            f'reward-acc {record["final_accuracy"]:.4f} best ({self.select}) '
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
    """The best episode as a `Policy` for `model` (the searched model).

    With `search.fit_to_target` the episode's sparsities are rescaled to meet
    the target exactly (`allocation.fit_to_target`); the episode's own values
    stay in the policy's metrics as `episode_sparsity`.
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
         'episode_global_sparsity': best['global_sparsity'],
         'episode_sparsity': found,
         'reward_accuracy': best['final_accuracy'], 'return': best['return'],
         'episode': best['episode'], 'reference': best.get('reference', ''),
         'demonstrations': dict(self.state.demos), 'select': self.select,
         'ramp_accuracy': best.get('ramp_accuracy'),
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
