"""Baseline per-layer allocations for a global target sparsity.

Each returns a `{layer_name: sparsity}` map that `pruning.apply_sparsity_map`
applies, so baselines and PuRL's policies take the same code path.

  uniform           every prunable layer at the target (what tfmot users do).
  global_magnitude  one magnitude threshold over all prunable weights; each
                    layer's sparsity is the share of its weights below it.
  lamp              Lee et al., ICLR 2021: each weight's magnitude score
                    normalised by the weights of its layer at least as large;
                    one global threshold over those scores.
  erk               Evci et al., 2020 (RigL): layer density proportional to
                    (sum of kernel dims) / (product of kernel dims).
  sensitivity       Distiller-style: prune each layer alone at several
                    sparsities, measure the reward-split accuracy drop, then
                    pick per-layer sparsities that meet the target with the
                    least summed drop (an exact knapsack over a discretised
                    parameter budget).

Each method takes a `budget`: 'params' (the target is the share of
prunable weights removed) or 'flops' (the share of their multiply-
accumulates per example). Under a FLOPs budget a method keeps its own
ranking (LAMP's scores, ERK's densities, ...) and meets the target in FLOPs.

`blend` combines allocations (the geometric mean of their densities, met at
the target); `allocate` takes blends of the free ones by name ('lamp+erk';
a part listed twice weighs twice, 'lamp+erk+erk'), which the benchmark
measures and the search can play as references.

Every method's map meets the global target to within one weight per layer
(`fit_to_target` does the last rounding for the ones that need it).
"""

import math
from typing import Dict

import numpy as np

from purl_tf import batchnorm, progress, pruning, train
from purl_tf.compat import keras

METHODS = ('uniform', 'global_magnitude', 'lamp', 'erk', 'sensitivity')
# The methods that need nothing but the weights (no data, no scan).
FREE_METHODS = ('uniform', 'global_magnitude', 'lamp', 'erk')
SENSITIVITY_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9,
                    0.95, 0.98, 0.99)


def _costs_by_name(infos, budget: str) -> Dict[str, float]:
  """`{layer_name: what its weights count in budget}` (`pruning.layer_costs`)."""
  return dict(zip((i.name for i in infos), pruning.layer_costs(infos, budget)))


def _check_target(target: float):
  if not 0.0 <= float(target) < 1.0:
    raise ValueError(f'target sparsity {target!r} is outside [0, 1)')


def _kernels(model: keras.Model):
  infos = pruning.prunable_layers(model)
  by_name = {pruning.layer_name(l): l for l in model.layers}
  return infos, {i.name: pruning.kernel_of(by_name[i.name]).numpy()
                 for i in infos}


def uniform(model: keras.Model, target: float) -> Dict[str, float]:
  """Every prunable layer at `target`."""
  _check_target(target)
  return {info.name: float(target) for info in pruning.prunable_layers(model)}


def global_magnitude(model: keras.Model, target: float,
                     max_layer_sparsity: float = 0.99,
                     budget: str = 'params') -> Dict[str, float]:
  """Per-layer sparsity read off one magnitude threshold over all layers.

  A layer whose share would exceed `max_layer_sparsity` is capped there (a
  fully pruned layer disconnects the network) and the weights it keeps are
  taken from the other layers, so the global target is still met.

  Args:
    model: a trained model (plain or wrapped).
    target: global sparsity in [0, 1).
    max_layer_sparsity: cap for any single layer.

  Returns:
    `{layer_name: sparsity}`.
  """
  _check_target(target)
  if budget != 'params':
    # The threshold that removes `target` of the FLOPs: the parameter
    # target at which it does, by bisection (the FLOPs removed grow with it).
    infos = pruning.prunable_layers(model)
    low, high = 0.0, float(target)
    while pruning.budget_sparsity(infos, global_magnitude(
        model, high, max_layer_sparsity), budget) < target and high < 0.999:
      low, high = high, min(0.999, high + 0.5 * (1.0 - high))
    for _ in range(30):
      mid = 0.5 * (low + high)
      reached = pruning.budget_sparsity(
          infos, global_magnitude(model, mid, max_layer_sparsity), budget)
      low, high = (mid, high) if reached < target else (low, mid)
    return global_magnitude(model, high, max_layer_sparsity)
  infos, kernels = _kernels(model)
  mags = {n: np.sort(np.abs(k).ravel()) for n, k in kernels.items()}
  total = sum(i.params for i in infos)
  to_prune = int(round(target * total))
  capped: Dict[str, float] = {}
  # Capping a layer frees budget that the others must absorb; a few rounds
  # settle it since each round caps at least one more layer or stops.
  for _ in range(len(infos) + 1):
    free = [i for i in infos if i.name not in capped]
    budget = to_prune - sum(int(round(capped[n] * mags[n].size)) for n in capped)
    if not free or budget <= 0:
      break
    pool = np.sort(np.concatenate([mags[i.name] for i in free]))
    threshold = pool[min(budget, pool.size) - 1]
    result = {i.name: float(np.searchsorted(mags[i.name], threshold, 'right'))
              / mags[i.name].size for i in free}
    over = {n: s for n, s in result.items() if s > max_layer_sparsity}
    if not over:
      capped.update(result)
      break
    capped.update({n: max_layer_sparsity for n in over})
  return {i.name: min(capped.get(i.name, 0.0), max_layer_sparsity) for i in infos}


def lamp_scores(kernel: np.ndarray) -> np.ndarray:
  """LAMP scores of one layer's weights, in ascending order of magnitude.

  With the squared weights sorted ascending, weight u scores
  `w_u^2 / sum_{v >= u} w_v^2`: its share of the weights of its layer that
  are at least as large. The largest weight scores 1; all-zero tails score 0.
  """
  sq = np.sort(np.square(kernel.astype(np.float64)).ravel())
  tail = np.cumsum(sq[::-1])[::-1]  # sum_{v >= u}
  return np.divide(sq, tail, out=np.zeros_like(sq), where=tail > 0)


def lamp(model: keras.Model, target: float,
         budget: str = 'params') -> Dict[str, float]:
  """The LAMP allocation (Lee et al., ICLR 2021).

  The `round(target * total)` weights with the smallest LAMP scores
  (`lamp_scores`) over all layers are pruned; a layer's sparsity is its share
  of them. Each layer's largest weight scores 1, so no layer is emptied
  below a target of 1. With a FLOPs budget the same ranking is pruned until
  the weights removed carry `target` of the FLOPs (each weight costs its
  layer's FLOPs per weight).

  Args:
    model: a trained model (plain or wrapped).
    target: global sparsity in [0, 1), counted in `budget`.
    budget: 'params' or 'flops'.

  Returns:
    `{layer_name: sparsity}`.
  """
  _check_target(target)
  infos, kernels = _kernels(model)
  # Each layer's largest weight (score 1) is kept: it is left out of the pool,
  # so even a target the scores alone would reach by emptying a layer of a
  # tiny net cannot.
  scores = [lamp_scores(kernels[i.name])[:-1] for i in infos]
  owner = np.concatenate([np.full(s.size, k) for k, s in enumerate(scores)])
  flat = np.concatenate(scores)
  # A stable sort breaks ties by layer order, so the count is exact.
  order = np.argsort(flat, kind='stable')
  to_prune = _count_for_budget(infos, owner[order], target, budget)
  pruned = owner[order[:to_prune]]
  counts = np.bincount(pruned, minlength=len(infos))
  return {i.name: float(counts[k]) / i.params for k, i in enumerate(infos)}


def _count_for_budget(infos, owners: np.ndarray, target: float,
                      budget: str) -> int:
  """How many weights, taken in the order whose layers `owners` lists,
  remove `target` of the budget: `round(target * total)` for params; for
  FLOPs the count whose summed cost is nearest to the target's."""
  if budget == 'params':
    return min(int(round(target * sum(i.params for i in infos))), owners.size)
  costs = np.asarray(pruning.layer_costs(infos, budget))
  per_weight = costs / np.asarray([i.params for i in infos], np.float64)
  cum = np.cumsum(per_weight[owners])
  goal = target * costs.sum()
  k = int(np.searchsorted(cum, goal))
  if k >= owners.size:
    return owners.size
  below = cum[k - 1] if k > 0 else 0.0
  return k if goal - below <= cum[k] - goal else k + 1


def erk_raw_density(kernel_shape) -> float:
  """ERK's unnormalised density: sum of kernel dims / product of kernel dims.

  For a Dense kernel (n_in, n_out) that is `(n_in + n_out) / (n_in * n_out)`;
  for a convolution (h, w, c_in, c_out) the spatial dims count too.
  """
  dims = [int(d) for d in kernel_shape]
  return float(sum(dims)) / float(np.prod(dims))


def erk(model: keras.Model, target: float,
        budget: str = 'params') -> Dict[str, float]:
  """The Erdos-Renyi-Kernel allocation (Evci et al., 2020, RigL).

  Layer density is `eps * erk_raw_density(kernel_shape)`, with `eps` chosen
  so the global density is `1 - target`. A layer whose density would exceed
  1 is kept dense and `eps` is recomputed over the others (RigL's rule).

  Args:
    model: a model (only the kernel shapes are read).
    target: global sparsity in [0, 1).

  Returns:
    `{layer_name: sparsity}`.
  """
  _check_target(target)
  infos = pruning.prunable_layers(model)
  return scale_densities(
      infos, {i.name: erk_raw_density(i.kernel_shape) for i in infos}, target,
      budget)


def scale_densities(infos, raw: Dict[str, float], target: float,
                    budget: str = 'params') -> Dict[str, float]:
  """Densities `eps * raw[layer]`, `eps` set so the global density is
  `1 - target`; a layer whose density would exceed 1 is kept dense and `eps`
  recomputed over the others (RigL's rule for ERK).

  Args:
    infos: `pruning.LayerInfo` of every prunable layer.
    raw: each layer's unnormalised density (> 0 for at least one layer).
    target: global sparsity in [0, 1), counted in `budget`.
    budget: 'params' or 'flops' (`pruning.BUDGETS`).

  Returns:
    `{layer_name: sparsity}`.
  """
  _check_target(target)
  cost = _costs_by_name(infos, budget)
  keep = (1.0 - float(target)) * sum(cost.values())
  dense: set = set()
  while True:
    free = [i for i in infos if i.name not in dense]
    budget_left = keep - sum(cost[i.name] for i in infos if i.name in dense)
    weighted = sum(raw[i.name] * cost[i.name] for i in free)
    eps = budget_left / weighted if weighted > 0 else 0.0
    over = [i.name for i in free if eps * raw[i.name] > 1.0]
    if not over:
      break
    dense.update(over)
  return {i.name: 0.0 if i.name in dense else
          float(min(1.0, max(0.0, 1.0 - eps * raw[i.name]))) for i in infos}


def blend(infos, maps, target: float, budget: str = 'params') -> Dict[str, float]:
  """The geometric mean of several allocations' densities, met at `target`.

  Each layer's density is the geometric mean of its densities in `maps`,
  then all are scaled by one factor (`scale_densities`) so the global
  sparsity is `target`. Between two strong allocations that disagree on a
  few layers (LAMP and ERK at 98% on `fmnist_resnet`: the stem, classifier
  and projections), this is the point halfway in log-density.

  Args:
    infos: `pruning.LayerInfo` of every prunable layer.
    maps: `{layer_name: sparsity}` maps, each covering every layer.
    target: global sparsity in [0, 1), counted in `budget`.
    budget: 'params' or 'flops'.

  Returns:
    `{layer_name: sparsity}`.

  Raises:
    ValueError: no maps, or a map that misses a layer.
  """
  if not maps:
    raise ValueError('blend needs at least one allocation')
  names = [i.name for i in infos]
  for m in maps:
    missing = [n for n in names if n not in m]
    if missing:
      raise ValueError(f'an allocation to blend has no sparsity for {missing}')
  raw = {n: float(np.exp(np.mean([np.log(max(1e-12, 1.0 - float(m[n])))
                                  for m in maps]))) for n in names}
  return scale_densities(infos, raw, target, budget)


def fit_to_target(infos, sparsity_map: Dict[str, float], target: float,
                  max_sparsity: float = pruning.MAX_SPARSITY,
                  budget: str = 'params') -> Dict[str, float]:
  """Rescales a per-layer map so that its global sparsity is `target` exactly.

  Above the target every sparsity is scaled by target/global (the layers
  keep their proportions); below it every density (1 - s) is scaled by
  (1 - target)/(1 - global). Used on PuRL's best episode, whose grid and
  budget clamp usually overshoot the target by a few points, so that every
  method is compared at the same sparsity. Both the target and the global
  sparsity count `budget` ('params' or 'flops').
  """
  _check_target(target)
  reached = pruning.budget_sparsity(infos, sparsity_map, budget)
  if reached <= 0.0 or abs(reached - target) < 1e-9:
    return dict(sparsity_map)
  if reached > target:
    k = target / reached
    return {n: float(s) * k for n, s in sparsity_map.items()}
  k = (1.0 - target) / (1.0 - reached)
  return {n: min(max_sparsity, 1.0 - (1.0 - float(s)) * k)
          for n, s in sparsity_map.items()}


def grid_for_target(grid, target: float):
  """`grid` sorted, with a value halfway from `target` to 1 added when the
  grid tops out below it, so the knapsack can reach any target < 1 (each
  layer's pruned units are rounded down: a grid whose largest value is the
  target cannot reach it)."""
  _check_target(target)
  values = sorted({float(s) for s in grid})
  top = 1.0 - (1.0 - float(target)) / 2
  if not values or values[-1] < top:
    values.append(top)
  return tuple(values)


def sensitivity_scan(model: keras.Model, reward_ds, grid=SENSITIVITY_GRID,
                     eval_batches: int = 0, calibration_ds=None,
                     bn_batches: int = 0) -> Dict[str, Dict[float, float]]:
  """Reward-split accuracy with each layer alone pruned to each grid value.

  No fine-tune: this measures how much each layer's own weights matter, as
  Distiller's sensitivity analysis does. The model is wrapped once and its
  weights restored from memory between measurements.

  Args:
    model: the trained dense model.
    reward_ds: batched (image, label) pipeline the accuracy is measured on.
    grid: sparsities each layer is scanned at.
    eval_batches: batches of `reward_ds` per measurement (0: all).
    calibration_ds, bn_batches: when both are given, BatchNormalization
      statistics are re-estimated from `bn_batches` batches of
      `calibration_ds` (training data) before each measurement, as the search
      does after each step, so nets with BatchNormalization are not judged
      by the dense net's statistics.

  Returns:
    `{layer_name: {sparsity: accuracy}}`.
  """
  infos = pruning.prunable_layers(model)
  # Masks change only through prune_now below (frequency 0: never re-mask).
  wrapped = pruning.apply_sparsity_map(
      model, {i.name: 0.0 for i in infos},
      schedule_fn=lambda name, s: pruning.VariableSparsity(0.0, 0))
  train.compile_model(wrapped, 1e-3)
  weights = [w.copy() for w in wrapped.get_weights()]
  steps = int(eval_batches) or None
  recalibrate = batchnorm.BatchNormRecalibrator(wrapped)

  def measure():
    if calibration_ds is not None:
      recalibrate(calibration_ds, int(bn_batches))
    return train.evaluate(wrapped, reward_ds, steps)
  return scan_layers(wrapped, infos, weights, measure, grid)


def scan_layers(wrapped: keras.Model, infos, weights, measure,
                grid=SENSITIVITY_GRID, deterministic: bool = False
                ) -> Dict[str, Dict[float, float]]:
  """The loop of a sensitivity scan, on a model already wrapped for pruning.

  Shared by `sensitivity_scan` and the search's sensitivity reference
  (`PruningEnv.sensitivity_scan`), so the two measure alike.

  Args:
    wrapped: the model with every prunable layer in a tfmot wrapper.
    infos: its prunable layers (`pruning.prunable_layers`).
    weights: the dense weights (`wrapped.get_weights()`, masks all ones),
      restored before each measurement.
    measure: returns the accuracy of `wrapped` as it is (it may first
      re-estimate BatchNormalization statistics).
    grid: sparsities each layer is pruned to, alone.
    deterministic: `measure` gives the same value for the same weights (it
      re-estimates statistics from fixed batches), so sparsity 0, the dense
      net for every layer, is measured once and shared.

  Returns:
    `{layer_name: {sparsity: accuracy}}`. The dense weights are restored
    at the end.
  """
  wrappers = pruning.wrappers(wrapped)
  scan: Dict[str, Dict[float, float]] = {}
  grid = [float(s) for s in grid]
  shared = {}
  if deterministic and 0.0 in grid:
    wrapped.set_weights(weights)
    shared[0.0] = measure()
  total = len(infos) * (len(grid) - len(shared)) + len(shared)
  print(f'sensitivity scan: {len(infos)} layers x {len(grid)} sparsities',
        flush=True)
  report = progress.Progress('sensitivity scan', total, 'evaluations')
  done = len(shared)
  for info in infos:
    scan[info.name] = {}
    for s in grid:
      if s in shared:
        scan[info.name][s] = shared[s]
        continue
      wrapped.set_weights(weights)
      pruning.prune_now(wrappers[info.name], s)
      scan[info.name][s] = measure()
      done += 1
      report.update(done)
  wrapped.set_weights(weights)
  return scan


def pick_by_sensitivity(infos, scan: Dict[str, Dict[float, float]],
                        target: float, units: int = 10000,
                        budget: str = 'params') -> Dict[str, float]:
  """Per-layer sparsities meeting `target` with the least summed accuracy drop.

  A knapsack by dynamic programming: each layer's option s contributes
  `floor(units * params * s / total)` pruned-weight units (rounded down, so
  the reached sparsity is never below what the units say) and a drop
  `acc(0) - acc(s)`; the least total drop reaching `ceil(units * target)`
  units wins. Ties go to the smaller sparsity. The grid makes the pick
  overshoot the target a little; `fit_to_target` then rescales it exactly.

  Raises:
    ValueError: the grid cannot reach the target.
  """
  _check_target(target)
  costs = _costs_by_name(infos, budget)
  total = sum(costs.values())
  need = int(math.ceil(units * target - 1e-9))
  best = np.full(need + 1, np.inf)  # least drop with min(units, need) reached
  best[0] = 0.0
  trace = []
  for info in infos:
    options = sorted(scan[info.name].items())
    base = options[0][1]
    nxt = np.full(need + 1, np.inf)
    prev = np.zeros(need + 1, np.int64)
    pick = np.zeros(need + 1, np.int64)
    for k, (s, acc) in enumerate(options):
      gain = min(need, int(math.floor(units * costs[info.name] * s / total)))
      drop = max(0.0, base - acc)
      cand = np.full(need + 1, np.inf)
      from_ = np.zeros(need + 1, np.int64)
      if gain < need:
        cand[gain:need] = best[:need - gain] + drop
        from_[gain:need] = np.arange(need - gain)
      lo = need - gain
      j = lo + int(np.argmin(best[lo:]))
      cand[need], from_[need] = best[j] + drop, j
      better = cand < nxt
      nxt[better], prev[better], pick[better] = cand[better], from_[better], k
    best = nxt
    trace.append((prev, pick, options))
  if not np.isfinite(best[need]):
    raise ValueError(f'the sensitivity grid cannot reach target {target}')
  result, state = {}, need
  for info, (prev, pick, options) in zip(reversed(infos), reversed(trace)):
    result[info.name] = float(options[pick[state]][0])
    state = prev[state]
  return fit_to_target(infos, {i.name: result[i.name] for i in infos}, target,
                       budget=budget)


def sensitivity(model: keras.Model, target: float, reward_ds,
                grid=SENSITIVITY_GRID, eval_batches: int = 0,
                calibration_ds=None, bn_batches: int = 0,
                budget: str = 'params') -> Dict[str, float]:
  """The sensitivity allocation (see the module docstring)."""
  scan = sensitivity_scan(model, reward_ds, grid_for_target(grid, target),
                          eval_batches, calibration_ds, bn_batches)
  return pick_by_sensitivity(pruning.prunable_layers(model), scan, target,
                             budget=budget)


def blend_parts(method: str):
  """The allocations a blend name such as 'lamp+erk' combines, repeats
  included ([]: not a blend)."""
  return method.split('+') if '+' in method else []


def is_free(method: str) -> bool:
  """Whether `method` needs nothing but the weights: one of `FREE_METHODS`
  or a blend of two or more distinct ones ('lamp+erk'). A part may be listed
  more than once to weight it: 'lamp+erk+erk' is the geometric mean with
  weights 1/3 and 2/3, a third of the way from ERK to LAMP in log-density
  ('lamp+lamp' is LAMP itself and is refused as a blend)."""
  parts = blend_parts(method)
  if not parts:
    return method in FREE_METHODS
  return len(set(parts)) >= 2 and all(p in FREE_METHODS for p in parts)


def allocate(method: str, model: keras.Model, target: float,
             reward_ds=None, eval_batches: int = 0, calibration_ds=None,
             bn_batches: int = 0, budget: str = 'params') -> Dict[str, float]:
  """Dispatches to an allocation method by name.

  Args:
    method: one of `METHODS`, or a blend of free ones ('lamp+erk', or
      'lamp+erk+erk' weighted 1:2; see `is_free` and `blend`).
    model: the trained dense model.
    target: global target sparsity, counted in `budget`.
    budget: 'params' (the share of prunable weights removed) or 'flops'
      (the share of their multiply-accumulates): every method meets the
      target in it, keeping its own ranking of weights or layers.
    reward_ds: the reward split, for 'sensitivity'.
    eval_batches: reward batches per measurement for 'sensitivity' (0: all).
    calibration_ds, bn_batches: BatchNormalization re-estimate for
      'sensitivity' (see `sensitivity_scan`).
  """
  pruning.check_budget(budget)
  if blend_parts(method) and is_free(method):
    # Each distinct part once; a repeated part weighs in the geometric mean.
    parts = {m: allocate(m, model, target, budget=budget)
             for m in set(blend_parts(method))}
    return blend(pruning.prunable_layers(model),
                 [parts[m] for m in blend_parts(method)], target, budget)
  if method == 'uniform':
    return uniform(model, target)
  if method == 'global_magnitude':
    return global_magnitude(model, target, budget=budget)
  if method == 'lamp':
    return lamp(model, target, budget)
  if method == 'erk':
    return erk(model, target, budget)
  if method == 'sensitivity':
    if reward_ds is None:
      raise ValueError('the sensitivity allocation needs the reward split')
    return sensitivity(model, target, reward_ds, eval_batches=eval_batches,
                       calibration_ds=calibration_ds, bn_batches=bn_batches,
                       budget=budget)
  raise ValueError(f'unknown allocation {method!r}; one of {METHODS} or policy')
