"""Pruning primitives: prunable layers, per-layer sparsity maps, strip, report.

Everything that prunes in purl_tf (the baselines, the RL environment, the
final fine-tune and the Python API) goes through `apply_sparsity_map`, so every
method is compared through the same code path.

Unstructured magnitude pruning (tfmot's `prune_low_magnitude`) is used: each
layer's kernel is masked independently, so layers tied by a residual add may
take different sparsities; no structure is shared between them.
"""

import dataclasses
import warnings
from typing import Callable, Dict, List, Mapping, Optional

import numpy as np

from purl_tf.compat import keras, tf, tfmot

_sparsity = tfmot.sparsity.keras
PruneLowMagnitude = type(
    _sparsity.prune_low_magnitude(keras.layers.Dense(1)))
# Layer types whose kernel is pruned. tfmot's own registry prunes nothing of a
# DepthwiseConv2D, so those are swapped for `PrunableDepthwiseConv2D` below.
KINDS = (
    (keras.layers.DepthwiseConv2D, 'depthwise'),
    (keras.layers.Conv1D, 'conv'),
    (keras.layers.Conv2D, 'conv'),
    (keras.layers.Conv3D, 'conv'),
    (keras.layers.Dense, 'dense'),
)
KIND_NAMES = ('conv', 'depthwise', 'dense')
MAX_SPARSITY = 0.999
# Reached global sparsity this far below the target counts as missing it.
TARGET_TOLERANCE = 0.005


@keras.utils.register_keras_serializable(package='purl_tf')
class PrunableDepthwiseConv2D(keras.layers.DepthwiseConv2D,
                              _sparsity.PrunableLayer):
  """A DepthwiseConv2D whose depthwise kernel tfmot prunes."""

  def get_prunable_weights(self):
    return [self.depthwise_kernel]


@dataclasses.dataclass(frozen=True)
class LayerInfo:
  """Static features of one prunable layer, in model order."""
  index: int
  name: str
  kind: str             # 'conv', 'depthwise' or 'dense'
  kernel_shape: tuple
  params: int           # number of prunable (kernel) weights
  flops: int            # multiply-accumulates of the kernel per example
  param_share: float    # params / all prunable params
  flop_share: float     # flops / all prunable flops


def _kind(layer) -> Optional[str]:
  if isinstance(layer, PruneLowMagnitude):
    layer = layer.layer
  for cls, kind in KINDS:
    if isinstance(layer, cls):
      return kind
  return None


def _check_functional(model):
  if not isinstance(model, keras.Model):
    raise ValueError(f'expected a keras.Model, got {type(model).__name__}')
  # Keras marks Sequential and functional models as graph networks; a
  # subclassed model has no layer graph that can be cloned with wrappers.
  if not getattr(model, '_is_graph_network', False) and not isinstance(
      model, keras.Sequential):
    raise ValueError(
        f'model {model.name!r} is a subclassed model; purl_tf prunes '
        'Sequential and functional models only (rebuild it with the '
        'functional API)')
  for layer in model.layers:
    if isinstance(layer, keras.Model):
      raise ValueError(f'model {model.name!r} nests model {layer.name!r}; '
                       'flatten it into one functional model first')


def kernel_of(layer):
  inner = layer.layer if isinstance(layer, PruneLowMagnitude) else layer
  if isinstance(inner, keras.layers.DepthwiseConv2D):
    return inner.depthwise_kernel
  return inner.kernel


def layer_name(layer):
  return layer.layer.name if isinstance(layer, PruneLowMagnitude) else layer.name


def prunable_layers(model: keras.Model) -> List[LayerInfo]:
  """Lists the prunable layers of a model in order, with their features.

  Args:
    model: a built Sequential or functional Keras model, plain or wrapped.

  Returns:
    One `LayerInfo` per prunable layer.

  Raises:
    ValueError: for a subclassed or nested model, or one with no prunable layer.
  """
  _check_functional(model)
  rows = []
  for layer in model.layers:
    kind = _kind(layer)
    if kind is None:
      continue
    kernel = kernel_of(layer)
    out_shape = layer.output_shape
    spatial = int(np.prod([d for d in out_shape[1:-1] if d is not None] or [1]))
    rows.append((layer_name(layer), kind, tuple(kernel.shape),
                 int(np.prod(kernel.shape)), int(np.prod(kernel.shape)) * spatial))
  if not rows:
    raise ValueError(f'model {model.name!r} has no prunable layer (Conv, '
                     'DepthwiseConv2D or Dense)')
  total_p = sum(r[3] for r in rows)
  total_f = sum(r[4] for r in rows)
  return [LayerInfo(i, n, k, s, p, f, p / total_p, f / total_f)
          for i, (n, k, s, p, f) in enumerate(rows)]


def validate_sparsity_map(model: keras.Model, sparsity_map: Mapping[str, float]):
  """Raises ValueError unless every entry names a prunable layer and is in [0, 1)."""
  names = [info.name for info in prunable_layers(model)]
  unknown = sorted(set(sparsity_map) - set(names))
  if unknown:
    raise ValueError(f'unknown layer name(s) {unknown} for model '
                     f'{model.name!r}; its prunable layers are {names}')
  for name, s in sparsity_map.items():
    if not isinstance(s, (int, float, np.floating)) or not 0.0 <= float(s) < 1.0:
      raise ValueError(f'sparsity {s!r} for layer {name!r} is outside [0, 1)')


class VariableSparsity(_sparsity.PruningSchedule):
  """A schedule whose target is read from a `tf.Variable` at every step.

  The RL environment assigns a new target to the variable; the next training
  step re-masks the layer. No variables are created and nothing is retraced.

  Args:
    target: a scalar float `tf.Variable`, or a float (a variable is created;
      create the schedule inside the strategy scope then).
    frequency: re-mask every `frequency` training steps; 0 never re-masks
      during training (the mask is set when the target is, by `prune_now`).
  """

  def __init__(self, target, frequency: int = 1):
    if int(frequency) < 0:
      raise ValueError(f'frequency must be >= 0, got {frequency}')
    if not isinstance(target, tf.Variable):
      self._validate_sparsity(float(target), 'target')
      target = tf.Variable(float(target), dtype=tf.float32, trainable=False)
    self.target = target
    self.frequency = int(frequency)

  def __call__(self, step):
    if self.frequency == 0:
      return tf.constant(False), tf.convert_to_tensor(self.target)
    should_prune = tf.math.equal(tf.math.floormod(step, self.frequency), 0)
    return should_prune, tf.convert_to_tensor(self.target)

  def get_config(self):
    return {'class_name': self.__class__.__name__,
            'config': {'target': float(self.target.numpy()),
                       'frequency': self.frequency}}


ScheduleFn = Callable[[str, float], _sparsity.PruningSchedule]


def constant_schedule(frequency: int = 1) -> ScheduleFn:
  """Each layer jumps to its target at the first step, re-masked every `frequency`."""
  return lambda name, s: _sparsity.ConstantSparsity(
      float(s), begin_step=0, frequency=frequency)


def polynomial_schedule(end_step: int, frequency: int = 10) -> ScheduleFn:
  """Each layer ramps from 0 to its target by `end_step` (tfmot PolynomialDecay).

  tfmot re-masks only on steps that are multiples of `frequency`, so
  `end_step` is rounded up to one: otherwise the last re-mask falls short of
  the target and the layer never reaches it. Train for more than the returned
  schedule's `end_step` steps.
  """
  frequency = max(1, int(frequency))
  end_step = max(int(end_step), 1)
  end_step = -(-end_step // frequency) * frequency
  return lambda name, s: _sparsity.PolynomialDecay(
      initial_sparsity=0.0, final_sparsity=float(s), begin_step=0,
      end_step=end_step, frequency=frequency)


def ramp_schedule(epochs: int, steps_per_epoch: int, ramp_fraction: float = 0.5,
                  frequency: int = 10) -> ScheduleFn:
  """A `polynomial_schedule` that ends within the training you will run.

  Sparsity ramps over the first `ramp_fraction` of `epochs * steps_per_epoch`
  steps and is held for the rest; the re-mask interval shrinks for short
  runs so that the last re-mask still falls inside the training.

  Args:
    epochs: epochs your `fit` runs.
    steps_per_epoch: batches per epoch (for a finite dataset,
      `int(dataset.cardinality())`).
    ramp_fraction: share of the steps over which sparsity rises, in (0, 1].
    frequency: re-mask every N steps during the ramp (at most).

  Raises:
    ValueError: non-positive epochs or steps, or a fraction outside (0, 1].
  """
  if int(epochs) < 1 or int(steps_per_epoch) < 1:
    raise ValueError(f'epochs ({epochs}) and steps_per_epoch '
                     f'({steps_per_epoch}) must be >= 1; for a dataset of '
                     'unknown size pass its number of batches')
  if not 0.0 < float(ramp_fraction) <= 1.0:
    raise ValueError(f'ramp_fraction {ramp_fraction} is outside (0, 1]')
  total = int(epochs) * int(steps_per_epoch)
  frequency = max(1, min(int(frequency), total // 4))
  # The ramp must end (on a multiple of `frequency`) before training does.
  ramp = min(int(float(ramp_fraction) * total), total - frequency)
  return polynomial_schedule(max(ramp, 1), frequency)


def _clone(model, make_layer, source_of):
  """Clones `model` with `make_layer`, then copies weights by layer name."""
  clone = keras.models.clone_model(model, clone_function=make_layer)
  sources = {source_of(layer).name: source_of(layer) for layer in model.layers}
  for layer in clone.layers:
    target = layer.layer if isinstance(layer, PruneLowMagnitude) else layer
    source = sources.get(target.name)
    if source is not None and source.weights:
      target.set_weights(source.get_weights())
  return clone


def _fresh(layer):
  return layer.__class__.from_config(layer.get_config())


def apply_sparsity_map(model: keras.Model, sparsity_map: Mapping[str, float],
                       schedule_fn: Optional[ScheduleFn] = None) -> keras.Model:
  """Wraps the named layers of a clone of `model` for pruning to their targets.

  The clone has its own variables, initialised from `model`'s trained weights;
  `model` is left untouched. Layers not in the map stay dense and unwrapped.

  Args:
    model: a Sequential or functional model.
    sparsity_map: `{layer_name: target sparsity in [0, 1)}`.
    schedule_fn: `f(layer_name, target) -> PruningSchedule`; defaults to
      `constant_schedule()`.

  Returns:
    The wrapped clone; train it with `tfmot.sparsity.keras.UpdatePruningStep`.

  Raises:
    ValueError: subclassed model, no prunable layer, unknown layer name or a
      sparsity outside [0, 1).
  """
  validate_sparsity_map(model, sparsity_map)
  schedule_fn = schedule_fn or constant_schedule()

  def make_layer(layer):
    if layer.name not in sparsity_map:
      return _fresh(layer)
    config = layer.get_config()
    if isinstance(layer, keras.layers.DepthwiseConv2D):
      fresh = PrunableDepthwiseConv2D.from_config(config)
    else:
      fresh = layer.__class__.from_config(config)
    return _sparsity.prune_low_magnitude(
        fresh, pruning_schedule=schedule_fn(layer.name,
                                            float(sparsity_map[layer.name])))

  return _clone(model, make_layer, lambda layer: layer)


def wrappers(model: keras.Model) -> Dict[str, 'PruneLowMagnitude']:
  """`{original layer name: pruning wrapper}` of a wrapped model."""
  return {l.layer.name: l for l in model.layers
          if isinstance(l, PruneLowMagnitude)}


def apply_masks(model: keras.Model):
  """Multiplies every wrapped kernel by its mask (the optimizer may have moved
  masked weights since the last training step)."""
  for wrapper in wrappers(model).values():
    for weight, mask, _ in wrapper.pruning_vars:
      weight.assign(weight * mask)


def schedule_target(wrapper) -> Optional[float]:
  """The sparsity a wrapper's pruning schedule ends at (None if unknown)."""
  config = wrapper.pruning_schedule.get_config().get('config', {})
  for key in ('final_sparsity', 'target_sparsity', 'target'):
    if key in config:
      return float(config[key])
  return None


class BelowTargetWarning(UserWarning):
  """A wrapped model is stripped before its layers reached their targets."""


def strip(model: keras.Model) -> keras.Model:
  """Returns a plain clone of a wrapped model with its masked weights.

  Wrappers are removed and `PrunableDepthwiseConv2D` becomes a plain
  `DepthwiseConv2D` again, so the result needs no purl_tf or tfmot to load.
  Warns (`BelowTargetWarning`) when a layer's mask is more than half a point
  short of its schedule's target: usually a schedule whose `end_step` lies
  beyond the training that was run (`polynomial_schedule`).
  """
  apply_masks(model)
  short = []
  for name, wrapper in wrappers(model).items():
    target = schedule_target(wrapper)
    mask = wrapper.pruning_vars[0][1].numpy()
    reached = 1.0 - float(mask.mean())
    if target is not None and reached < target - 0.005:
      short.append(f'{name} {reached:.3f} of {target:.3f}')
  if short:
    warnings.warn(
        'stripping a model below its pruning targets: ' + ', '.join(short[:4])
        + (f' (+{len(short) - 4} more)' if len(short) > 4 else '') + '; '
        'train until the schedule ends (polynomial_schedule: end_step within '
        'the steps fit runs) before strip', BelowTargetWarning, stacklevel=2)

  def make_layer(layer):
    if isinstance(layer, PruneLowMagnitude):
      inner = layer.layer
      cls = (keras.layers.DepthwiseConv2D
             if isinstance(inner, PrunableDepthwiseConv2D) else inner.__class__)
      return cls.from_config(inner.get_config())
    return _fresh(layer)

  return _clone(model, make_layer,
                lambda l: l.layer if isinstance(l, PruneLowMagnitude) else l)


def sparsity_report(model: keras.Model) -> dict:
  """Sparsity actually reached, over the prunable kernels of a model.

  Works on wrapped models (reads the masked kernel) and plain ones.

  Returns:
    `{'layers': {name: sparsity}, 'global': sparsity, 'zeros': int,
      'params': int}`.
  """
  masks = {}
  for name, wrapper in wrappers(model).items():
    masks[name] = wrapper.pruning_vars[0][1].numpy()
  layers, zeros, total = {}, 0, 0
  for info in prunable_layers(model):
    layer = next(l for l in model.layers if layer_name(l) == info.name)
    kernel = kernel_of(layer).numpy()
    if info.name in masks:
      kernel = kernel * masks[info.name]
    z = int(np.sum(kernel == 0))
    layers[info.name] = z / kernel.size
    zeros += z
    total += kernel.size
  return {'layers': layers, 'global': zeros / total, 'zeros': zeros,
          'params': total}


def global_sparsity(infos: List[LayerInfo], sparsity_map: Mapping[str, float]) -> float:
  """The global sparsity a per-layer map gives, over all prunable weights."""
  return budget_sparsity(infos, sparsity_map, 'params')


# What a target sparsity counts (prune.budget): the prunable weights, or
# their multiply-accumulates per example (a weight of a convolution costs
# one per output position, so an early, high-resolution layer's weights
# cost more than a late one's).
BUDGETS = ('params', 'flops')


def check_budget(budget: str):
  if budget not in BUDGETS:
    raise ValueError(f'prune.budget must be one of {BUDGETS}, got {budget!r}')


def layer_costs(infos: List[LayerInfo], budget: str = 'params') -> List[float]:
  """What each layer's weights count in `budget`, all of them kept."""
  check_budget(budget)
  return [float(i.flops if budget == 'flops' else i.params) for i in infos]


def budget_sparsity(infos: List[LayerInfo], sparsity_map: Mapping[str, float],
                    budget: str = 'params') -> float:
  """The share of `budget` (params: `global_sparsity`; flops: the
  multiply-accumulates) a per-layer map removes."""
  costs = layer_costs(infos, budget)
  return sum(c * float(sparsity_map.get(i.name, 0.0))
             for c, i in zip(costs, infos)) / sum(costs)


def pruned_at_once(model: keras.Model,
                   sparsity_map: Mapping[str, float]) -> keras.Model:
  """A stripped copy of `model` with each named layer magnitude-pruned to its
  sparsity at once (no training): what one-shot pruning gives, for
  conversion tests and size measurements."""
  wrapped = apply_sparsity_map(model, sparsity_map)
  for name, wrapper in wrappers(wrapped).items():
    prune_now(wrapper, float(sparsity_map[name]))
  return strip(wrapped)


def prune_now(wrapper, sparsity: float):
  """Sets one wrapper's mask to keep its largest-magnitude weights, at once.

  The same rule as tfmot's mask update (keep round(n * (1 - s)) weights, at
  least one), for when no training step follows to do it.
  """
  for weight, mask, threshold in wrapper.pruning_vars:
    flat = tf.reshape(tf.abs(weight), [-1])
    n = int(flat.shape[0])
    keep = max(1, int(round(n * (1.0 - float(sparsity)))))
    value = tf.math.top_k(flat, k=keep).values[-1]
    new_mask = tf.cast(tf.abs(weight) >= value, mask.dtype)
    mask.assign(new_mask)
    threshold.assign(tf.cast(value, threshold.dtype))
    weight.assign(weight * new_mask)
