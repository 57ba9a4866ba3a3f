"""Baseline per-layer allocations for a global target sparsity.

Each returns a `{layer_name: sparsity}` map that `pruning.apply_sparsity_map`
applies, so baselines and PuRL's policies take the same code path.

  uniform           every prunable layer at the target (what tfmot users do).
  global_magnitude  one magnitude threshold over all prunable weights; each
                    layer's sparsity is the share of its weights below it.
"""

from typing import Dict

import numpy as np

from purl_tf import pruning
from purl_tf.compat import keras

METHODS = ('uniform', 'global_magnitude')


def _check_target(target: float):
  if not 0.0 <= float(target) < 1.0:
    raise ValueError(f'target sparsity {target!r} is outside [0, 1)')


def uniform(model: keras.Model, target: float) -> Dict[str, float]:
  """Every prunable layer at `target`."""
  _check_target(target)
  return {info.name: float(target) for info in pruning.prunable_layers(model)}


def global_magnitude(model: keras.Model, target: float,
                     max_layer_sparsity: float = 0.99) -> Dict[str, float]:
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
  infos = pruning.prunable_layers(model)
  by_name = {pruning.layer_name(l): l for l in model.layers}
  mags = {i.name: np.sort(np.abs(pruning.kernel_of(by_name[i.name]).numpy()).ravel())
          for i in infos}
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


def allocate(method: str, model: keras.Model, target: float) -> Dict[str, float]:
  """Dispatches to an allocation method by name."""
  if method == 'uniform':
    return uniform(model, target)
  if method == 'global_magnitude':
    return global_magnitude(model, target)
  raise ValueError(f'unknown allocation {method!r}; one of {METHODS} or policy')
