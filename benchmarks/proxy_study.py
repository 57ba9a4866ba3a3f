r"""Which cheap measurement of an allocation predicts its final test accuracy?

The search picks its best episode by a proxy measured in seconds; the user
gets the allocation after the full final fine-tune. This study prunes one
dense net to one target with several allocations (the free ones and random
perturbations of LAMP: each layer's kept weights x 2**u, u uniform in
[-1, 1], refit to the target) and measures, for each:

  episode        the search's measure: the allocation played as one episode
                 (layer by layer, `search.finetune_steps` after each), then
                 the whole reward split.
  episode+R      the same after R more fine-tune batches
                 (`search.final_finetune_steps`).
  short_ramp     a short copy of the final fine-tune: from the dense weights,
                 sparsity ramped over RAMP batches then held for HOLD, then
                 the whole reward split.
  test           the final fine-tune (as every method gets) and the test set.

and reports the rank (Spearman) and linear (Pearson) correlation of each
proxy with the test accuracy.

  python benchmarks/proxy_study.py --net=fmnist_resnet --target=0.98

Writes benchmarks/results/proxy_<net>_<target>.json, .md and .png.
"""

import json
import os
import sys
import time

from absl import app
from absl import flags
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import purl_tf  # pylint: disable=g-import-not-at-top,unused-import
from purl_tf import allocation, batchnorm, cli_errors, config_defaults
from purl_tf import experiment
from purl_tf import io_utils, pruning, report, search_loop, train
from purl_tf.compat import keras

_NET = flags.DEFINE_string('net', 'fmnist_resnet', 'Net (a configs/ name).')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the dense net and fine-tunes.')
_TARGET = flags.DEFINE_float('target', 0.98, 'Global target sparsity.')
_PERTURB = flags.DEFINE_integer('perturbations', 6, 'Random LAMP '
                                'perturbations.', lower_bound=0)
_RECOVER = flags.DEFINE_integer('recover_steps', 50, 'R of episode+R.')
_RAMP = flags.DEFINE_integer('ramp_steps', 100, 'short_ramp: ramp batches.')
_HOLD = flags.DEFINE_integer('hold_steps', 50, 'short_ramp: batches at target.')
_OUT = flags.DEFINE_string('out', os.path.join(REPO, 'benchmarks', 'results'),
                           'Results directory.')
_WORKDIR = flags.DEFINE_string('workdir', '/tmp/purl_bench', 'Run outputs and '
                               'the dense-net cache (shared with fmnist.py).')


def perturbed(infos, base, target, rng):
  kept = {i.name: i.params * (1 - base[i.name]) * 2.0 ** rng.uniform(-1, 1)
          for i in infos}
  sparsity = {i.name: min(pruning.MAX_SPARSITY, max(0.0, 1 - kept[i.name] /
                                                    i.params)) for i in infos}
  return allocation.fit_to_target(infos, sparsity, target)


def short_ramp(ctx, sparsity_map, ramp, hold, bn_batches):
  with ctx.strategy.scope():
    wrapped = pruning.apply_sparsity_map(
        ctx.dense, sparsity_map, pruning.polynomial_schedule(ramp, 10))
    train.compile_model(wrapped, ctx.config.finetune.learning_rate,
                        ctx.config.finetune.optimizer)
  train.fine_tune(wrapped, ctx.splits.search_train, steps=ramp + hold)
  batchnorm.recalibrate(wrapped, ctx.splits.search_train, bn_batches,
                        ctx.strategy)
  return train.evaluate(wrapped, ctx.splits.reward)


def spearman(a, b):
  ra = np.argsort(np.argsort(a))
  rb = np.argsort(np.argsort(b))
  return float(np.corrcoef(ra, rb)[0, 1])


def main(argv):
  del argv
  cli_errors.quiet_logging()  # TensorFlow's SavedModel INFO lines
  net, seed, target = _NET.value, _SEED.value, _TARGET.value
  config = config_defaults.load(os.path.join(REPO, 'configs', f'{net}.py'))
  config.seed = seed
  config.prune.sparsity = target
  config.train.cache_dir = os.path.join(_WORKDIR.value, 'dense_cache')
  workdir = os.path.join(_WORKDIR.value, f'proxy_{net}_{seed}_{target}')
  os.makedirs(workdir, exist_ok=True)
  ctx = experiment.prepare(config, workdir, verbose=2)
  infos = pruning.prunable_layers(ctx.dense)
  allocs = {m: allocation.fit_to_target(infos, allocation.allocate(
      m, ctx.dense, target), target) for m in allocation.FREE_METHODS}
  rng = np.random.RandomState(seed)
  for k in range(_PERTURB.value):
    allocs[f'lamp_perturbed_{k}'] = perturbed(infos, allocs['lamp'], target, rng)
  env = search_loop.build_env(ctx.dense, ctx.splits.search_train,
                              ctx.splits.reward, config, ctx.strategy)
  bn = int(config.search.bn_batches)
  rows = []
  for name, alloc in allocs.items():
    t0 = time.perf_counter()
    env.set_reference(alloc)
    env.reset()
    for _ in range(env.num_layers):
      env.step(np.int64(env.neutral_action))
    episode = env.step_log[-1]['accuracy']
    # What search.final_finetune_steps adds, on the same network.
    train.fine_tune(env.model, env._train_ds, steps=_RECOVER.value)  # pylint: disable=protected-access
    batchnorm.recalibrate(env.model, env._cached_ds, bn, ctx.strategy)  # pylint: disable=protected-access
    recovered = train.evaluate(env.model, ctx.splits.reward)
    proxy_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    keras.utils.set_random_seed(seed)
    ramp = short_ramp(ctx, alloc, _RAMP.value, _HOLD.value, bn)
    ramp_s = time.perf_counter() - t0
    ctx.workdir = os.path.join(workdir, name)
    os.makedirs(ctx.workdir, exist_ok=True)
    keras.utils.set_random_seed(seed)
    summary = experiment.finish(ctx, alloc, target=target, method=name,
                                verbose=0)
    rows.append({'allocation': name, 'episode': episode,
                 f'episode+{_RECOVER.value}': recovered, 'short_ramp': ramp,
                 'test': summary['pruned_test_accuracy'],
                 'episode_s': proxy_s, 'short_ramp_s': ramp_s,
                 'sparsity': alloc})
    print(f'{name}: episode {episode:.4f} +R {recovered:.4f} short_ramp '
          f'{ramp:.4f} test {rows[-1]["test"]:.4f}', flush=True)
  proxies = ['episode', f'episode+{_RECOVER.value}', 'short_ramp']
  test = [r['test'] for r in rows]
  corr = {p: {'spearman': spearman([r[p] for r in rows], test),
              'pearson': float(np.corrcoef([r[p] for r in rows], test)[0, 1])}
          for p in proxies}
  name = f'proxy_{net}_{target}'
  payload = {'net': net, 'seed': seed, 'target': target,
             'dense_test_accuracy': ctx.dense_test_accuracy,
             'recover_steps': _RECOVER.value, 'ramp_steps': _RAMP.value,
             'hold_steps': _HOLD.value, 'rows': rows, 'correlation': corr,
             'machine': experiment.versions()}
  os.makedirs(_OUT.value, exist_ok=True)
  io_utils.write_json_atomic(os.path.join(_OUT.value, f'{name}.json'), payload)
  lines = [f'# Which proxy predicts the final test accuracy? ({net}, {target})',
           '', f'One dense net (seed {seed}, test accuracy '
           f'{ctx.dense_test_accuracy:.4f}), {len(rows)} allocations; '
           f'episode+R: R = {_RECOVER.value}; short_ramp: {_RAMP.value} ramp '
           f'+ {_HOLD.value} hold batches. Each test accuracy is one final '
           'fine-tune (seeded alike).', '',
           '| allocation | ' + ' | '.join(proxies) + ' | test |',
           '|---' * (len(proxies) + 2) + '|']
  for r in sorted(rows, key=lambda r: -r['test']):
    lines.append(f'| {r["allocation"]} | ' + ' | '.join(
        f'{r[p]:.4f}' for p in proxies) + f' | {r["test"]:.4f} |')
  lines += ['', '| proxy | Spearman | Pearson | seconds per allocation |',
            '|---|---|---|---|']
  secs = {'episode': np.mean([r['episode_s'] for r in rows]),
          'short_ramp': np.mean([r['short_ramp_s'] for r in rows])}
  for p in proxies:
    lines.append(f'| {p} | {corr[p]["spearman"]:+.2f} | '
                 f'{corr[p]["pearson"]:+.2f} | '
                 f'{secs.get(p, secs["episode"]):.0f} |')
  lines += ['', f'![proxies vs test]({name}.png)', '']
  with open(os.path.join(_OUT.value, f'{name}.md'), 'w') as f:
    f.write('\n'.join(lines))
  plt = report._pyplot()  # pylint: disable=protected-access
  fig, axes = plt.subplots(1, len(proxies), figsize=(4 * len(proxies), 3.6),
                           sharey=True)
  for ax, p in zip(axes, proxies):
    ax.scatter([r[p] for r in rows], test, color='tab:red')
    for r in rows:
      ax.annotate(r['allocation'].replace('lamp_perturbed_', 'p'),
                  (r[p], r['test']), fontsize=7)
    ax.set_xlabel(f'{p}: reward-split accuracy')
    ax.set_title(f'Spearman {corr[p]["spearman"]:+.2f}')
  axes[0].set_ylabel('test accuracy after the final fine-tune')
  report._save(plt, fig, os.path.join(_OUT.value, f'{name}.png'))  # pylint: disable=protected-access
  print(json.dumps(corr, indent=1))


if __name__ == '__main__':
  app.run(main)
