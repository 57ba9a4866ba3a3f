"""The PuRL MDP as a tf-agents `PyEnvironment`.

An episode walks the prunable layers in model order. At step t the action
picks layer t's target sparsity from a grid; the environment assigns it to
that layer's schedule variable, runs a short fine-tune of the partly pruned
network on a cached training subset, evaluates it on the reward split, and
returns the reward of this step. The episode ends after the last layer; reset
restores the trained dense weights and optimizer state from memory.

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
  13  previous action's sparsity
"""

import math
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
from tf_agents.environments import py_environment
from tf_agents.specs import array_spec
from tf_agents.trajectories import time_step as ts

from purl_tf import batchnorm, pruning, train
from purl_tf.compat import keras, tf

NUM_FEATURES = 14


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
    grid: action grid (see `action_grid`).
    clamp: apply `budget_clamp` to every action.
    finetune_steps: batches per short fine-tune.
    subset_batches: batches of `train_ds` to cache for the fine-tunes.
    eval_batches: batches of `reward_ds` per evaluation (0: all).
    learning_rate, optimizer: of the short fine-tunes.
    nan_penalty: reward of a step whose fine-tune loss became NaN/inf; that
      step ends the episode.
    frequency: re-mask every N fine-tune steps (0: only when a target is set).
    seed: seeds the fine-tune subset's order (see `reseed`).
    bn_batches: after each fine-tune, the first N cached training batches
      re-estimate BatchNormalization statistics before the evaluation
      (`purl_tf.batchnorm`; 0: off, and nothing to do for nets without it).
  """

  def __init__(self, model: keras.Model, train_ds: tf.data.Dataset,
               reward_ds: tf.data.Dataset, reward_fn, target_sparsity: float, *,
               strategy: Optional[tf.distribute.Strategy] = None,
               grid: Optional[np.ndarray] = None, clamp: bool = True,
               finetune_steps: int = 50, subset_batches: int = 100,
               eval_batches: int = 0, learning_rate: float = 1e-3,
               optimizer: str = 'adam', nan_penalty: float = -2.0,
               frequency: int = 1, seed: int = 0, bn_batches: int = 0):
    super().__init__()
    if not 0.0 <= target_sparsity < 1.0:
      raise ValueError(f'target sparsity {target_sparsity} is outside [0, 1)')
    if (finetune_steps < 0 or subset_batches <= 0 or eval_batches < 0 or
        bn_batches < 0):
      raise ValueError('finetune_steps, eval_batches and bn_batches must be '
                       '>= 0 and subset_batches > 0')
    self._strategy = strategy or tf.distribute.get_strategy()
    self._grid = action_grid() if grid is None else np.asarray(grid, np.float64)
    self._clamp = bool(clamp)
    self._target = float(target_sparsity)
    self._reward_fn = reward_fn
    self._finetune_steps = int(finetune_steps)
    self._eval_steps = int(eval_batches) or None
    self._nan_penalty = float(nan_penalty)
    self.infos = pruning.prunable_layers(model)
    self._params = [i.params for i in self.infos]
    self._static = layer_features(self.infos)

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
    return array_spec.BoundedArraySpec((), np.int64, 0, len(self._grid) - 1,
                                       name='action')

  @property
  def grid(self) -> np.ndarray:
    return self._grid

  @property
  def num_layers(self) -> int:
    return len(self.infos)

  @property
  def target_sparsity(self) -> float:
    return self._target

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
    """Global sparsity of the chosen targets (unvisited layers dense)."""
    total = float(sum(self._params))
    return sum(p * s for p, s in zip(self._params, self._chosen)) / total

  def chosen(self) -> Dict[str, float]:
    """`{layer_name: sparsity}` chosen so far this episode."""
    return {i.name: s for i, s in zip(self.infos, self._chosen)}

  def _observation(self) -> np.ndarray:
    t = min(self._t, self.num_layers - 1)
    rest = float(sum(self._params[t:]))
    pruned = sum(p * s for p, s in zip(self._params, self._chosen))
    need = (self._target * sum(self._params) - pruned) / rest if rest else 0.0
    prev = self._chosen[-1] if self._chosen else 0.0
    dynamic = [self.reached_sparsity(), need, self._last_accuracy, prev]
    obs = np.concatenate([self._static[t], np.asarray(dynamic, np.float32)])
    return np.clip(obs, 0.0, 1.0).astype(np.float32)

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
    if self._episode_ended:
      return self.reset()
    t = self._t
    index = int(action)
    if self._clamp:
      index = budget_clamp(self._grid, index, t, self._params, self._chosen,
                           self._target)
    sparsity = float(self._grid[index])
    self._targets[t].assign(sparsity)
    # Mask the layer now; the schedule re-masks during the fine-tune only
    # every `frequency` steps (never with 0), so big nets avoid a top-k over
    # every kernel at every step.
    pruning.prune_now(self._wrappers[self.infos[t].name], sparsity)
    self._chosen.append(sparsity)
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
      accuracy = train.evaluate(self.model, self._reward_ds, self._eval_steps)
      reward = self._reward_fn(accuracy=accuracy,
                               sparsity=self.reached_sparsity(),
                               dense_accuracy=self.dense_accuracy,
                               target_sparsity=self._target)
    eval_s = time.perf_counter() - start
    self._last_accuracy = accuracy
    self._t += 1
    self.step_log.append({
        'layer': self.infos[t].name, 'action': int(action),
        'clamped_action': index, 'sparsity': sparsity, 'accuracy': accuracy,
        'reward': float(reward), 'global_sparsity': self.reached_sparsity(),
        'finetune_s': finetune_s, 'eval_s': eval_s, 'diverged': diverged})
    if diverged or self._t == self.num_layers:
      self._episode_ended = True
      return ts.termination(self._observation(), np.float32(reward))
    return ts.transition(self._observation(), np.float32(reward), discount=1.0)
