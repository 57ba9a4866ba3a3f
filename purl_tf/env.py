"""The PuRL MDP as a tf-agents `PyEnvironment`.

An episode walks the prunable layers in model order. At step t the action
sets layer t's target sparsity; the environment assigns it to that layer's
schedule variable, runs a short fine-tune of the partly pruned network on a
cached training subset, evaluates it on the reward split, and returns the
reward of this step. The episode ends after the last layer; reset restores
the trained dense weights and optimizer state from memory.

Two action spaces (`action_space`):

  relative  (default) the action is a log2 scale u on a grid (for example
            -1 ... +1 in steps of 0.25, neutral 0) applied to the layer's
            kept weights in a *reference* allocation (LAMP, ERK, global
            magnitude, ...), rescaled so the layers still to come meet the
            budget (`relative_kept`). The all-neutral episode is the
            reference itself, every episode meets the target exactly, and
            any target in [0, 1) is reachable: the agent spends its episodes
            refining a good allocation instead of rediscovering one.
  absolute  the paper's form: the action indexes a grid of sparsities
            (0.0 ... 0.95) with AMC's budget clamp (`budget_clamp`). A grid
            that tops out below the target cannot express what high targets
            need; `check_reachable` refuses such a target up front.

The model is wrapped once. Every layer's pruning schedule reads its target
from a `tf.Variable` (`pruning.VariableSparsity`), so a step only assigns a
variable and trains: no model is cloned and no `tf.function` is retraced.

Observation (float32, each feature in [0, 1]):
   0  layer index / number of layers
 1-3  layer type one-hot: conv, depthwise, dense
   4  log(1 + params) / log(1 + largest layer's params)
   5  kernel spatial size / 7 (0 for dense), clipped to 1
   6  log(1 + fan-in channels) / log(1 + largest fan-in)
   7  log(1 + output channels) / log(1 + largest output)
   8  the layer's share of the prunable FLOPs
   9  the layer's share of the prunable parameters
  10  global sparsity reached so far (visited layers at their targets)
  11  sparsity the remaining layers (this one included) would need, on
      average, to reach the target (clipped to 1)
  12  last reward-split accuracy (the dense one before the first step)
  13  previous step's sparsity
  14  the reference allocation's sparsity for this layer (absolute: the
      target)
  15  the sparsity the neutral action would give this layer now (absolute:
      feature 11)
"""

import math
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
from tf_agents.environments import py_environment
from tf_agents.specs import array_spec
from tf_agents.trajectories import time_step as ts

from purl_tf import allocation, batchnorm, interrupt, pruning, train
from purl_tf.compat import keras, tf

NUM_FEATURES = 16
ACTION_SPACES = ('relative', 'absolute')
# The reward of a step whose fine-tune diverged (it ends the episode): below
# any accuracy_delta return, so such an episode never ranks first.
NAN_PENALTY = -2.0


def action_grid(minimum: float = 0.0, maximum: float = 0.95,
                step: float = 0.05) -> np.ndarray:
  """The discrete target sparsities an action indexes."""
  if not 0.0 <= minimum <= maximum < 1.0 or step <= 0:
    raise ValueError(f'bad action grid min={minimum} max={maximum} step={step}: '
                     'need 0 <= min <= max < 1 and step > 0')
  n = int(math.floor((maximum - minimum) / step + 1e-6)) + 1
  return np.round(minimum + step * np.arange(n), 6)


def budget_clamp(grid: np.ndarray, index: int, t: int, params: Sequence[int],
                 chosen: Sequence[float], target: float) -> int:
  """Raises action `index` for layer t to the least grid value that still
  lets the layers after t reach the global `target` at the grid's maximum.

  As in AMC's action clamp, this makes every episode meet the budget when it
  can be met at all; when even the maximum cannot, the maximum is returned.

  Args:
    grid: the action grid.
    index: the agent's action for layer t.
    t: the layer's position.
    params: parameter counts of all layers.
    chosen: the sparsities already chosen for layers 0..t-1.
    target: the global target sparsity.

  Returns:
    The clamped action index (>= index).
  """
  total = float(sum(params))
  pruned = sum(p * s for p, s in zip(params[:t], chosen))
  rest = float(sum(params[t + 1:]))
  need = target * total - pruned - grid[-1] * rest
  for j in range(index, len(grid)):
    if grid[j] * params[t] >= need - 1e-9:
      return j
  return len(grid) - 1


def scale_grid(minimum: float = -1.0, maximum: float = 1.0,
               step: float = 0.25) -> np.ndarray:
  """The log2 scales of kept weights a relative action indexes (0 included)."""
  if not minimum <= 0.0 <= maximum or step <= 0 or minimum == maximum:
    raise ValueError(f'bad scale grid min={minimum} max={maximum} step={step}: '
                     'need min <= 0 <= max, min < max and step > 0 (log2 '
                     'units; 0 is the neutral action)')
  below = np.arange(0.0, minimum - 1e-9, -step)[::-1]
  above = np.arange(step, maximum + 1e-9, step)
  return np.round(np.concatenate([below, above]), 6)


def relative_kept(t: int, scale: float, ref_kept: Sequence[float],
                  params: Sequence[int], kept: Sequence[float],
                  min_scale: float) -> float:
  """Kept weights of layer t for a relative action.

  The budget left, B = sum(ref_kept) - sum(kept), is what the reference
  keeps in all layers minus what layers 0..t-1 kept. The proposal is
  `ref_kept[t] * 2**scale * B / sum(ref_kept[t:])`: the reference rescaled so
  that, were every later action neutral, the budget would be met exactly.
  It is then clamped so that the later layers can still meet it, each within
  [ref_kept[j] * 2**min_scale, params[j]] (and this one within
  [ref_kept[t] * 2**min_scale, params[t]]). The last layer thus takes exactly
  what is left, and every episode keeps exactly sum(ref_kept) weights.

  Args:
    t: the layer's position.
    scale: the action's log2 scale (0: neutral).
    ref_kept: kept weights of every layer in the reference allocation.
    params: weights of every layer.
    kept: kept weights already chosen for layers 0..t-1.
    min_scale: the grid's smallest scale (the floor of every layer).

  Returns:
    Kept weights of layer t (a float; the pruning rounds it).
  """
  floor = [r * 2.0 ** min_scale for r in ref_kept]
  budget = float(sum(ref_kept)) - float(sum(kept))
  rest_ref = float(sum(ref_kept[t:]))
  factor = budget / rest_ref if rest_ref > 0 else 0.0
  proposal = ref_kept[t] * 2.0 ** scale * factor
  lo = max(floor[t], budget - float(sum(params[t + 1:])))
  hi = min(float(params[t]), budget - float(sum(floor[t + 1:])))
  return float(min(max(proposal, lo), hi))


def check_reachable(grid: np.ndarray, target: float, clamp: bool = True):
  """Raises ValueError when an absolute grid cannot meet `target`.

  With the clamp, every layer at the grid's maximum is the sparsest episode:
  a target above it (less a tolerance) would make every episode the same.
  """
  if clamp and target > float(grid[-1]) - 0.005 and target > 0:
    raise ValueError(
        f'target sparsity {target} needs an absolute action grid above it '
        f'(its maximum is {float(grid[-1])}); use the default '
        '--config.env.action_space=relative or raise the top of '
        '--config.env.grid')


def layer_features(infos: Sequence[pruning.LayerInfo]) -> np.ndarray:
  """The static part (features 0-9) of each layer's observation."""
  n = len(infos)
  max_p = max(i.params for i in infos)
  fan_in = [int(np.prod(i.kernel_shape[:-1])) if i.kind == 'dense'
            else i.kernel_shape[-2] for i in infos]
  fan_out = [i.kernel_shape[-1] * (i.kernel_shape[-2] if i.kind == 'depthwise'
                                   else 1) for i in infos]
  rows = []
  for k, info in enumerate(infos):
    kind = [float(info.kind == name) for name in pruning.KIND_NAMES]
    spatial = 0.0 if info.kind == 'dense' else min(1.0, info.kernel_shape[0] / 7.0)
    rows.append([k / n] + kind + [
        math.log1p(info.params) / math.log1p(max_p), spatial,
        math.log1p(fan_in[k]) / math.log1p(max(fan_in)),
        math.log1p(fan_out[k]) / math.log1p(max(fan_out)),
        info.flop_share, info.param_share])
  return np.asarray(rows, np.float32)


class PruningEnv(py_environment.PyEnvironment):
  """Layer-by-layer pruning with a reward at every step.

  Args:
    model: the trained dense model (Sequential or functional).
    train_ds: batched training pipeline; its first `subset_batches` batches are
      cached and reshuffled for the short fine-tunes.
    reward_ds: batched reward (validation) pipeline, cached.
    reward_fn: a reward object from `purl_tf.reward`.
    target_sparsity: the global target S* in [0, 1).
    strategy: the `tf.distribute` strategy to build and train under.
    action_space: 'relative' or 'absolute' (see the module docstring).
    grid: absolute action grid (see `action_grid`).
    scales: relative action grid (see `scale_grid`).
    reference: `{layer_name: sparsity}` the relative actions scale (default:
      uniform at the target); see `set_reference`.
    clamp: apply `budget_clamp` to every absolute action.
    finetune_steps: batches per short fine-tune.
    subset_batches: batches of `train_ds` to cache for the fine-tunes.
    eval_batches: batches of `reward_ds` per evaluation (0: all).
    final_eval_batches: batches of `reward_ds` for the last step's
      evaluation (0: all), which decides which episode is best.
    learning_rate, optimizer: of the short fine-tunes.
    nan_penalty: reward of a step whose fine-tune loss became NaN/inf; that
      step ends the episode.
    frequency: re-mask every N fine-tune steps (0: only when a target is set).
    seed: seeds the fine-tune subset's order (see `reseed`).
    bn_batches: after each fine-tune, the first N cached training batches
      re-estimate BatchNormalization statistics before the evaluation
      (`purl_tf.batchnorm`; 0: off, and nothing to do for nets without it).
    budget: what the target counts, 'params' or 'flops'
      (`pruning.BUDGETS`): the actions' budget arithmetic, the reached
      sparsity and observation features 10, 11 and 15 all count it.
  """

  def __init__(self, model: keras.Model, train_ds: tf.data.Dataset,
               reward_ds: tf.data.Dataset, reward_fn, target_sparsity: float, *,
               strategy: Optional[tf.distribute.Strategy] = None,
               action_space: str = 'relative',
               grid: Optional[np.ndarray] = None,
               scales: Optional[np.ndarray] = None,
               reference: Optional[Dict[str, float]] = None,
               clamp: bool = True,
               finetune_steps: int = 50, subset_batches: int = 100,
               eval_batches: int = 0, final_eval_batches: int = 0,
               learning_rate: float = 1e-3,
               optimizer: str = 'adam', nan_penalty: float = NAN_PENALTY,
               frequency: int = 1, seed: int = 0, bn_batches: int = 0,
               budget: str = 'params'):
    super().__init__()
    pruning.check_budget(budget)
    self.budget = budget
    if not 0.0 <= target_sparsity < 1.0:
      raise ValueError(f'target sparsity {target_sparsity} is outside [0, 1)')
    if action_space not in ACTION_SPACES:
      raise ValueError(f'unknown action space {action_space!r}; one of '
                       f'{ACTION_SPACES}')
    if (min(finetune_steps, eval_batches, final_eval_batches,
            bn_batches) < 0 or subset_batches <= 0):
      raise ValueError('finetune_steps, eval_batches, final_eval_batches '
                       'and bn_batches must be >= 0 and subset_batches > 0')
    self._strategy = strategy or tf.distribute.get_strategy()
    self._relative = action_space == 'relative'
    self.action_space = action_space
    self._grid = action_grid() if grid is None else np.asarray(grid, np.float64)
    self._scales = scale_grid() if scales is None else np.asarray(scales,
                                                                  np.float64)
    self._clamp = bool(clamp)
    self._target = float(target_sparsity)
    if not self._relative:
      check_reachable(self._grid, self._target, self._clamp)
    self._reward_fn = reward_fn
    self._finetune_steps = int(finetune_steps)
    self._eval_steps = int(eval_batches) or None
    self._final_eval_steps = int(final_eval_batches) or None
    self._nan_penalty = float(nan_penalty)
    self.infos = pruning.prunable_layers(model)
    # Each layer's weights counted in the budget (all kept): every budget
    # sum below weighs layers by it.
    self._costs = pruning.layer_costs(self.infos, budget)
    self._static = layer_features(self.infos)
    self.set_reference(reference)

    with self._strategy.scope():
      self._targets = [tf.Variable(0.0, trainable=False, name=f'target_{i}')
                       for i in range(len(self.infos))]
      schedules = {info.name: pruning.VariableSparsity(var, frequency)
                   for info, var in zip(self.infos, self._targets)}
      self.model = pruning.apply_sparsity_map(
          model, {i.name: 0.0 for i in self.infos},
          schedule_fn=lambda name, s: schedules[name])
      train.compile_model(self.model, learning_rate, optimizer)
      self.model.optimizer.build(self.model.trainable_variables)
    self._wrappers = pruning.wrappers(self.model)
    self._bn_batches = int(bn_batches)
    self._recalibrate = batchnorm.BatchNormRecalibrator(self.model,
                                                        self._strategy)
    self._initial_weights = [w.copy() for w in self.model.get_weights()]
    self._initial_opt = [v.numpy() for v in self.model.optimizer.variables]
    self._subset_batches = int(subset_batches)
    self._cached_ds = train_ds.take(self._subset_batches).cache()
    self.reseed(seed)
    self._reward_ds = reward_ds
    self.dense_accuracy = train.evaluate(self.model, reward_ds, self._eval_steps)
    self.step_log: List[Dict[str, float]] = []
    self._t = 0
    self._chosen: List[float] = []
    self._last_accuracy = self.dense_accuracy
    self._episode_ended = True

  # --- specs -----------------------------------------------------------------
  def observation_spec(self):
    return array_spec.BoundedArraySpec((NUM_FEATURES,), np.float32, 0.0, 1.0,
                                       name='observation')

  def action_spec(self):
    n = len(self._scales) if self._relative else len(self._grid)
    return array_spec.BoundedArraySpec((), np.int64, 0, n - 1, name='action')

  @property
  def grid(self) -> np.ndarray:
    """What each action means: log2 scales (relative) or sparsities."""
    return self._scales if self._relative else self._grid

  @property
  def neutral_action(self) -> int:
    """The relative action that keeps the reference (scale 0)."""
    return int(np.argmin(np.abs(self._scales)))

  @property
  def num_layers(self) -> int:
    return len(self.infos)

  @property
  def target_sparsity(self) -> float:
    return self._target

  @property
  def reference(self) -> Dict[str, float]:
    return dict(self._reference)

  def set_reference(self, reference: Optional[Dict[str, float]]):
    """Sets the allocation relative actions scale (takes effect at reset).

    The reference is first rescaled to meet the target exactly
    (`allocation.fit_to_target`), so the all-neutral episode keeps exactly
    the target's weights.

    Raises:
      ValueError: the map does not name every prunable layer.
    """
    names = [i.name for i in self.infos]
    if reference is None:
      reference = {n: self._target for n in names}
    if sorted(reference) != sorted(names):
      raise ValueError('a reference allocation must name every prunable '
                       f'layer: {names}')
    self._reference = allocation.fit_to_target(self.infos, dict(reference),
                                               self._target,
                                               budget=self.budget)
    self._ref_kept = [p * (1.0 - self._reference[n])
                      for n, p in zip(names, self._costs)]

  def reseed(self, seed: int):
    """Fixes the order of the fine-tune batches from now on.

    The search calls this at every episode with a seed derived from the
    episode number, so an episode's batches do not depend on how many
    episodes this process has run: a resumed search replays them exactly.
    """
    self._train_ds = self._cached_ds.shuffle(
        self._subset_batches, seed=int(seed),
        reshuffle_each_iteration=True).repeat()

  # --- state ------------------------------------------------------------------
  def reached_sparsity(self) -> float:
    """Global sparsity of the chosen targets (unvisited layers dense), in
    the budget's units."""
    total = float(sum(self._costs))
    return sum(p * s for p, s in zip(self._costs, self._chosen)) / total

  def chosen(self) -> Dict[str, float]:
    """`{layer_name: sparsity}` chosen so far this episode."""
    return {i.name: s for i, s in zip(self.infos, self._chosen)}

  def _kept(self) -> List[float]:
    return [p * (1.0 - s) for p, s in zip(self._costs, self._chosen)]

  def action_sparsity(self, action: int) -> float:
    """The sparsity `action` would give the current layer (after clamping)."""
    t = self._t
    if self._relative:
      kept = relative_kept(t, float(self._scales[int(action)]), self._ref_kept,
                           self._costs, self._kept(), float(self._scales[0]))
      return float(min(pruning.MAX_SPARSITY,
                       max(0.0, 1.0 - kept / self._costs[t])))
    index = int(action)
    if self._clamp:
      index = budget_clamp(self._grid, index, t, self._costs, self._chosen,
                           self._target)
    return float(self._grid[index])

  def _observation(self) -> np.ndarray:
    t = min(self._t, self.num_layers - 1)
    rest = float(sum(self._costs[t:]))
    pruned = sum(p * s for p, s in zip(self._costs, self._chosen))
    need = (self._target * sum(self._costs) - pruned) / rest if rest else 0.0
    prev = self._chosen[-1] if self._chosen else 0.0
    if self._relative:
      ref = self._reference[self.infos[t].name]
      neutral = (self.action_sparsity(self.neutral_action)
                 if self._t < self.num_layers else ref)
    else:
      ref, neutral = self._target, need
    dynamic = [self.reached_sparsity(), need, self._last_accuracy, prev, ref,
               neutral]
    obs = np.concatenate([self._static[t], np.asarray(dynamic, np.float32)])
    return np.clip(obs, 0.0, 1.0).astype(np.float32)

  def ramp_accuracy(self, sparsity_map: Dict[str, float], ramp_steps: int,
                    hold_steps: int, chunks: int = 10,
                    per_example: bool = False):
    """Reward-split accuracy of an allocation after a short gradual prune.

    A short copy of the final fine-tune, on this environment's wrapped model
    (no clone, no retrace): from the dense weights, every layer's sparsity
    rises along tfmot's cubic PolynomialDecay curve to its target in
    `chunks` stages over `ramp_steps` fine-tune batches, is held for
    `hold_steps` more, BatchNormalization statistics are re-estimated, and
    the accuracy is measured on `final_eval_batches` of the reward split.
    The environment must be reset before the next episode (the search does).

    Args:
      sparsity_map: `{layer_name: sparsity}` for every prunable layer.
      ramp_steps: fine-tune batches over which sparsity rises (>= chunks).
      hold_steps: fine-tune batches at the targets afterwards.
      chunks: stages of the ramp (each re-masks every layer).
      per_example: return whether each evaluated reward example is classified
        right (its mean is the accuracy), for a paired comparison.

    Returns:
      The reward-split accuracy (0.0 if the fine-tune diverged), or with
      `per_example` a boolean vector (all False if it diverged).
    """
    if ramp_steps < chunks or hold_steps < 0 or chunks < 1:
      raise ValueError('need ramp_steps >= chunks >= 1 and hold_steps >= 0')
    self.reset()
    self._episode_ended = True  # the next step() resets first
    per_chunk = [ramp_steps // chunks + (k < ramp_steps % chunks)
                 for k in range(chunks)]
    try:
      for k, steps in enumerate(per_chunk):
        frac = 1.0 - (1.0 - (k + 1) / chunks) ** 3
        for info, var in zip(self.infos, self._targets):
          s = float(sparsity_map[info.name]) * frac
          var.assign(s)
          pruning.prune_now(self._wrappers[info.name], s)
        train.fine_tune(self.model, self._train_ds, epochs=1, steps=steps)
      if hold_steps:
        train.fine_tune(self.model, self._train_ds, epochs=1, steps=hold_steps)
    except train.NonFiniteLossError:
      diverged = True
    else:
      diverged = False
      pruning.apply_masks(self.model)
      self._recalibrate(self._cached_ds, self._bn_batches)
    if not per_example:
      return 0.0 if diverged else train.evaluate(
          self.model, self._reward_ds, self._final_eval_steps)
    correct = train.correct_predictions(self.model, self._reward_ds,
                                        self._final_eval_steps)
    return np.zeros_like(correct) if diverged else correct

  def sensitivity_scan(self, grid=allocation.SENSITIVITY_GRID
                       ) -> Dict[str, Dict[float, float]]:
    """`allocation.sensitivity_scan` on this environment's wrapped model.

    Each layer alone is pruned to each grid value, BatchNormalization
    statistics are re-estimated from the cached training batches and the
    accuracy is measured on `eval_batches` of the reward split, as a step's
    evaluation is, without a fine-tune. The same cached batches serve every
    measurement, so the scan is deterministic (and the dense net is
    measured once for every layer's sparsity 0). The environment must be reset
    before the next episode (the search does).

    Returns:
      `{layer_name: {sparsity: accuracy}}`.
    """
    self.reset()
    self._episode_ended = True  # the next step() resets first

    def measure():
      self._recalibrate(self._cached_ds, self._bn_batches)
      return train.evaluate(self.model, self._reward_ds, self._eval_steps)
    return allocation.scan_layers(self.model, self.infos,
                                  self._initial_weights, measure, grid,
                                  deterministic=True)

  def _reset(self):
    self.model.set_weights(self._initial_weights)
    for var, value in zip(self.model.optimizer.variables, self._initial_opt):
      var.assign(value)
    for var in self._targets:
      var.assign(0.0)
    self._t = 0
    self._chosen = []
    self._last_accuracy = self.dense_accuracy
    self._episode_ended = False
    self.step_log = []
    return ts.restart(self._observation())

  def _step(self, action):
    interrupt.check()  # a Ctrl-C whose exception TensorFlow swallowed
    if self._episode_ended:
      return self.reset()
    t = self._t
    sparsity = self.action_sparsity(int(action))
    self._targets[t].assign(sparsity)
    # Mask the layer now; the schedule re-masks during the fine-tune only
    # every `frequency` steps (never with 0), so big nets avoid a top-k over
    # every kernel at every step.
    pruning.prune_now(self._wrappers[self.infos[t].name], sparsity)
    self._chosen.append(sparsity)
    last = t + 1 == self.num_layers
    start = time.perf_counter()
    diverged = False
    if self._finetune_steps:
      try:
        train.fine_tune(self.model, self._train_ds, epochs=1,
                        steps=self._finetune_steps)
      except train.NonFiniteLossError:
        diverged = True
    if not diverged:
      # Counted as fine-tune time: it is part of adapting the pruned net.
      self._recalibrate(self._cached_ds, self._bn_batches)
    finetune_s = time.perf_counter() - start
    start = time.perf_counter()
    if diverged:
      accuracy, reward = 0.0, self._nan_penalty
    else:
      # The last evaluation decides which episode is best: it may use more
      # of the reward split than the per-step ones.
      accuracy = train.evaluate(
          self.model, self._reward_ds,
          self._final_eval_steps if last else self._eval_steps)
      reward = self._reward_fn(accuracy=accuracy,
                               sparsity=self.reached_sparsity(),
                               dense_accuracy=self.dense_accuracy,
                               target_sparsity=self._target,
                               previous_accuracy=self._last_accuracy)
    eval_s = time.perf_counter() - start
    self._last_accuracy = accuracy
    self._t += 1
    self.step_log.append({
        'layer': self.infos[t].name, 'action': int(action),
        'sparsity': sparsity, 'accuracy': accuracy,
        'reward': float(reward), 'global_sparsity': self.reached_sparsity(),
        'finetune_s': finetune_s, 'eval_s': eval_s, 'diverged': diverged})
    if diverged or last:
      self._episode_ended = True
      return ts.termination(self._observation(), np.float32(reward))
    return ts.transition(self._observation(), np.float32(reward), discount=1.0)
