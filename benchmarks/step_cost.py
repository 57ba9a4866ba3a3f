r"""What one search step costs, part by part, and how it grows.

A step of the search (`PruningEnv.step`) masks one layer, fine-tunes a few
batches, re-estimates BatchNormalization statistics and evaluates on the
reward split. This measures each part on `fmnist_resnet`'s cached dense net
(seed 0) at a 98% target, in milliseconds (median of --repeats), against
the floor the same work costs without Keras' per-call machinery:

  mask          `pruning.prune_now` of one layer (a top-k over its kernel).
  finetune_k    `train.fine_tune` (Keras `fit`) of k batches.
  bn_k          `BatchNormRecalibrator` over k cached batches.
  eval_k        `train.evaluate` (Keras `evaluate`) of k reward batches.
  predict_k     the same k batches through a compiled forward pass on
                cached tensors (the floor of an evaluation).
  step          one whole `env.step` at the config's budgets.

  python benchmarks/step_cost.py            # ~2 min on 2 CPU cores

Writes benchmarks/results/step_cost_fmnist_resnet.{json,md}.
"""

import os
import statistics
import sys
import time

from absl import app
from absl import flags
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import purl_tf  # pylint: disable=g-import-not-at-top,unused-import
from purl_tf import config_defaults, experiment, io_utils, pruning
from purl_tf import search_loop, train
from purl_tf.compat import keras, tf

_REPEATS = flags.DEFINE_integer('repeats', 5, 'Timings per part (median).')
_OUT = flags.DEFINE_string('out', os.path.join(REPO, 'benchmarks', 'results'),
                           'Results directory.')
SIZES = (1, 5, 16, 40)


def median_ms(fn, repeats):
  fn()  # traces, fills caches
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    times.append(1000 * (time.perf_counter() - t0))
  return statistics.median(times)


def measure(repeats):
  config = config_defaults.load(os.path.join(REPO, 'configs',
                                             'fmnist_resnet.py'))
  config.train.cache_dir = os.path.join(REPO, 'benchmarks', 'dense_cache')
  config.prune.sparsity = 0.98
  keras.utils.set_random_seed(0)
  ctx = experiment.prepare(config, '/tmp/step_cost', verbose=0)
  env = search_loop.build_env(ctx.dense, ctx.splits.search_train,
                              ctx.splits.reward, config, ctx.strategy)
  env.reset()
  model = env.model
  wrappers = pruning.wrappers(model)
  # pylint: disable=protected-access
  train_ds, reward_ds, cached = env._train_ds, env._reward_ds, env._cached_ds
  recal = env._recalibrate
  # pylint: enable=protected-access
  widest = max(env.infos, key=lambda i: i.params)
  out = {'net': 'fmnist_resnet', 'layers': len(env.infos),
         'batch_size': int(config.data.batch_size),
         'config': {'finetune_steps': int(config.search.finetune_steps),
                    'bn_batches': int(config.search.bn_batches),
                    'eval_batches': int(config.search.eval_batches)},
         'ms': {}}
  ms = out['ms']
  ms['mask_widest'] = median_ms(
      lambda: pruning.prune_now(wrappers[widest.name], 0.98), repeats)
  ms['mask_all'] = median_ms(
      lambda: [pruning.prune_now(w, 0.98) for w in wrappers.values()], repeats)
  forward = tf.function(lambda x: model(x, training=False))
  tensors = [x for x, _ in reward_ds.take(max(SIZES))]
  for k in SIZES:
    ms[f'finetune_{k}'] = median_ms(
        lambda k=k: train.fine_tune(model, train_ds, epochs=1, steps=k),
        repeats)
    ms[f'bn_{k}'] = median_ms(lambda k=k: recal(cached, k), repeats)
    ms[f'eval_{k}'] = median_ms(
        lambda k=k: train.evaluate(model, reward_ds, k), repeats)
    ms[f'predict_{k}'] = median_ms(
        lambda k=k: [forward(x).numpy() for x in tensors[:k]], repeats)
  env.reset()

  def one_step():
    if env._episode_ended:  # pylint: disable=protected-access
      env.reset()
    env.step(np.int64(env.neutral_action))
  ms['step'] = median_ms(one_step, repeats)
  out['versions'] = experiment.versions()
  return out


def write_markdown(path, out):
  ms, c = out['ms'], out['config']
  lines = ['# What a search step costs (fmnist_resnet, 98%)', '',
           f'{out["layers"]} prunable layers, batches of {out["batch_size"]}; '
           'median milliseconds over repeated calls on one machine '
           f'({out["versions"]["cpus"]} CPUs), measured side by side in one '
           'run by `benchmarks/step_cost.py`.', '',
           '| batches k | Keras fit of k | BN re-estimate of k | Keras '
           'evaluate of k | compiled forward of k (floor) |',
           '|---|---|---|---|---|']
  for k in SIZES:
    lines.append(f'| {k} | {ms[f"finetune_{k}"]:.0f} | {ms[f"bn_{k}"]:.0f} | '
                 f'{ms[f"eval_{k}"]:.0f} | {ms[f"predict_{k}"]:.0f} |')
  per_img = ms[f'predict_{SIZES[-1]}'] / (SIZES[-1] * out['batch_size'])
  lines += ['', f'Masking the widest layer: {ms["mask_widest"]:.1f} ms; '
            f'every layer: {ms["mask_all"]:.0f} ms. One whole step at the '
            f'config\'s budgets ({c["finetune_steps"]} fine-tune, '
            f'{c["bn_batches"]} BN and {c["eval_batches"]} evaluation '
            f'batches): **{ms["step"]:.0f} ms**, so an episode of '
            f'{out["layers"]} steps costs about '
            f'{ms["step"] * out["layers"] / 1000:.1f} s. The compiled '
            f'forward pass costs {per_img * 1000:.0f} µs an image.', '']
  fixed = {
      'fit': ms['finetune_1'] - (ms['finetune_5'] - ms['finetune_1']) / 4,
      'evaluate': ms['eval_1'] - (ms['eval_5'] - ms['eval_1']) / 4,
  }
  lines += [f'Fixed cost per call, extrapolated to 0 batches: Keras fit '
            f'{fixed["fit"]:.0f} ms, Keras evaluate {fixed["evaluate"]:.0f} '
            'ms: what a step pays before any image is processed.', '']
  with open(path, 'w') as f:
    f.write('\n'.join(lines))


def main(argv):
  del argv
  out = measure(_REPEATS.value)
  os.makedirs(_OUT.value, exist_ok=True)
  base = os.path.join(_OUT.value, 'step_cost_fmnist_resnet')
  io_utils.write_json_atomic(base + '.json', out)
  write_markdown(base + '.md', out)
  print(open(base + '.md').read())


if __name__ == '__main__':
  app.run(main)
