"""purl_tf inside a user's own Keras training code.

  import purl_tf                                   # before tensorflow
  lamp = purl_tf.allocate(model, 'lamp', 0.9)      # a free baseline, or
  policy = purl_tf.search(model, train_ds, reward_ds, target_sparsity=0.9)
  pruned = purl_tf.apply(model, policy,
                         schedule=purl_tf.polynomial_schedule(end_step=2000))
  pruned.compile(...)
  pruned.fit(train_ds, epochs=3, callbacks=purl_tf.callbacks(log_dir='logs'))
  final = purl_tf.strip(pruned)
  purl_tf.export_for_serving(final, 'serving', 'my_model')
  purl_tf.save_keras_model(final, 'pruned.keras')
  tflite_bytes = purl_tf.to_tflite(final)          # zeros stored sparse

These functions are re-exported by `purl_tf/__init__.py`, the public API.
"""

import copy
import os
from typing import List, Mapping, Optional, Union

from purl_tf import allocation, config_defaults, policy as policy_lib, pruning
from purl_tf import pipeline, search_loop
from purl_tf.compat import keras, tfmot


def check_dataset(ds, model: keras.Model, name: str):
  """Raises one ValueError that says what to pass, for a dataset `fit` and
  `evaluate` would otherwise fail on deep inside Keras.

  Args:
    ds: what the user passed.
    model: the model it feeds.
    name: the argument's name, for the message.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  how = ('pass tf.data.Dataset.from_tensor_slices((images, labels))'
         '.batch(64), with integer class labels')
  if not isinstance(ds, tf.data.Dataset):
    raise ValueError(f'{name} must be a batched tf.data.Dataset of (image, '
                     f'label) pairs, got {type(ds).__name__}: {how}')
  spec = ds.element_spec
  if not (isinstance(spec, tuple) and len(spec) == 2 and
          all(isinstance(x, tf.TensorSpec) for x in spec)):
    raise ValueError(f'{name} must yield (image, label) pairs, got elements '
                     f'{spec}: {how}')
  images, labels = spec
  want = tuple(model.input_shape)
  if images.shape.rank == len(want) - 1:
    raise ValueError(f'{name} is not batched (images {images.shape}, the '
                     f'model takes {want}): call .batch(64) on it')
  got = tuple(images.shape)
  if len(got) != len(want) or any(
      w is not None and g is not None and w != g
      for w, g in zip(want[1:], got[1:])):
    raise ValueError(f'{name} images have shape {got}, the model takes '
                     f'{want}: resize or rebuild the model')
  if labels.shape.rank is not None and labels.shape.rank > 1:
    raise ValueError(f'{name} labels have shape {labels.shape}: one-hot '
                     'labels? purl_tf trains with integer class labels '
                     '(sparse_categorical_crossentropy): map them with '
                     'tf.argmax(label, -1)')
  for _ in ds.take(1):
    break
  else:
    raise ValueError(f'{name} is empty')


def search(model: keras.Model, train_ds, reward_ds, config=None, *,
           target_sparsity: Optional[float] = None,
           workdir: Optional[str] = None, strategy=None,
           verbose: bool = True) -> policy_lib.Policy:
  """Runs the PuRL search on a trained Keras model and returns the policy.

  The model is not changed: the search works on a wrapped clone, resetting it
  to `model`'s weights between episodes.

  Args:
    model: a trained Sequential or functional model whose last layer gives
      class probabilities (sparse integer labels).
    train_ds: batched `(image, label)` training data for the short fine-tunes
      (the first `config.search.subset_batches` batches are cached).
    reward_ds: batched validation data for the per-step rewards; keep the
      test set out of it.
    config: a purl_tf config (`purl_tf.default_config()`; its `search`, `env`,
      `reward`, `agent` and `prune` parts are read). Not modified.
    target_sparsity: the global target; overrides `config.prune.sparsity`.
    workdir: when set, episodes.jsonl, checkpoints, TensorBoard events,
      policy.json and the greedy policy are written there.
    strategy: a `tf.distribute` strategy for the fine-tunes; default: the
      current one.
    verbose: print one line per episode.

  Returns:
    The best `Policy` found (it meets the sparsity budget).

  Raises:
    ValueError: a subclassed model, no prunable layer, bad config values
      (`select.finalists` > 0 among them: it needs the final fine-tune),
      or datasets that are not batched (image, integer label) pipelines of
      the model's input shape (`check_dataset`).
  """
  config = copy.deepcopy(config) if config is not None else (
      config_defaults.base_config())
  if target_sparsity is not None:
    if not 0.0 <= float(target_sparsity) < 1.0:
      raise ValueError(f'target_sparsity {target_sparsity} is outside [0, 1)')
    config.prune.sparsity = float(target_sparsity)
  search_loop.check_config(config)
  if int(config.select.finalists):
    # The finalists are scored after the final fine-tune, which this API
    # leaves to the caller's own training code.
    # A config that plays no episode (fmnist_resnet's) needs some to search.
    episodes = ('' if int(config.search.episodes) else
                ' and config.search.episodes > 0 (this config plays none: '
                'its references are its finalists)')
    raise ValueError(
        f'config.select.finalists={config.select.finalists} needs the final '
        'fine-tune, which purl_tf.search() leaves to you: set '
        f'config.select.finalists = 0{episodes} (the short fine-tune then '
        'chooses), or run purl-search, which fine-tunes the finalists itself')
  pruning.prunable_layers(model)
  check_dataset(train_ds, model, 'train_ds')
  check_dataset(reward_ds, model, 'reward_ds')
  if workdir:
    os.makedirs(workdir, exist_ok=True)
  return pipeline.search(model, train_ds, reward_ds, config,
                         strategy=strategy, workdir=workdir,
                         verbose=verbose).policy


def allocate(model: keras.Model, method: str, target_sparsity: float,
             reward_ds=None, eval_batches: int = 0,
             budget: str = 'params') -> policy_lib.Policy:
  """A free per-layer allocation of a global target, as a `Policy`.

  The baselines PuRL is measured against, for `apply` like a searched policy:

    uniform           every prunable layer at the target.
    global_magnitude  one magnitude threshold over all layers.
    lamp              LAMP scores (Lee et al., 2021), one global threshold.
    erk               Erdos-Renyi-Kernel densities (Evci et al., 2020).
    sensitivity       a per-layer pruning scan on `reward_ds`, then a
                      knapsack (needs `reward_ds`; minutes on a big net).

  Args:
    model: the trained model (only weights and shapes are read).
    method: one of the names above.
    target_sparsity: the global target in [0, 1).
    reward_ds: batched `(image, label)` validation data, for 'sensitivity'.
    eval_batches: batches of `reward_ds` per scan point (0: all).
    budget: what the target counts: 'params' (the share of prunable weights
      removed) or 'flops' (the share of their multiply-accumulates).

  Returns:
    A `Policy` that meets the target (within one weight per layer).

  Raises:
    ValueError: unknown method or budget, a target outside [0, 1), or
      'sensitivity' without `reward_ds`.
  """
  if method not in allocation.METHODS:
    raise ValueError(f'unknown allocation {method!r}; one of '
                     f'{allocation.METHODS}')
  target = float(target_sparsity)
  sparsity = allocation.allocate(method, model, target, reward_ds=reward_ds,
                                 eval_batches=eval_batches, budget=budget)
  infos = pruning.prunable_layers(model)
  sparsity = allocation.fit_to_target(infos, sparsity, target, budget=budget)
  return policy_lib.Policy(
      sparsity, policy_lib.fingerprint(model),
      {'method': method, 'target_sparsity': target, 'budget': budget,
       'budget_sparsity': pruning.budget_sparsity(infos, sparsity, budget),
       'global_sparsity': pruning.global_sparsity(infos, sparsity)})


def apply(model: keras.Model,
          policy: Union[policy_lib.Policy, Mapping[str, float], str],
          schedule: Optional[pruning.ScheduleFn] = None) -> keras.Model:
  """Wraps a clone of `model` to reach a policy's per-layer sparsity.

  Train the result with your own `compile`/`fit` and `purl_tf.callbacks()`.

  Args:
    model: the model (the same architecture the policy was found for).
    policy: a `Policy`, a `{layer_name: sparsity}` map, or a policy.json path.
    schedule: `f(layer_name, target) -> tfmot PruningSchedule`, e.g.
      `purl_tf.polynomial_schedule(end_step)` (default:
      `purl_tf.constant_schedule()`).

  Returns:
    The wrapped clone, initialised from `model`'s weights.

  Raises:
    ValueError: the policy does not fit the model (names the layers).
  """
  if isinstance(policy, str):
    policy = policy_lib.Policy.load(policy)
  elif not isinstance(policy, policy_lib.Policy):
    policy = policy_lib.Policy(dict(policy))
  policy.check(model)
  return pruning.apply_sparsity_map(model, policy.sparsity, schedule)


def callbacks(log_dir: Optional[str] = None) -> List[keras.callbacks.Callback]:
  """The callbacks a wrapped model's `fit` needs.

  Args:
    log_dir: when set, tfmot `PruningSummaries` write per-layer sparsity
      there for TensorBoard.
  """
  cbs = [tfmot.sparsity.keras.UpdatePruningStep()]
  if log_dir:
    cbs.append(tfmot.sparsity.keras.PruningSummaries(log_dir=log_dir))
  return cbs
