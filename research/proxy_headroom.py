r"""Is there headroom beyond LAMP and ERK, and which cheap proxy ranks it?

Issue 32's first measurement, before any agent is tuned to find better
allocations: on `fmnist_resnet`'s cached dense nets, at 95% and 98%, the
free allocations (LAMP, ERK, their blend) and random moves around LAMP and
ERK in log-density (a few layers' kept weights times 2**u, u in
{-1, -0.5, 0.5, 1}, then all rescaled to meet the target) each get:

  oneshot   magnitude-pruned at once, BatchNormalization statistics
            re-estimated from 10 cached training batches, no fine-tune:
            accuracy, cross-entropy and KL divergence to the dense net's
            outputs on 2,048 fixed reward-split images.
  short30   the selection stage's short fine-tune, 30 batches (20 ramp, 10
            held), then the whole reward split: accuracy and cross-entropy.
  short150  the same over 150 batches (the default `select.short_steps`).
  final     the final fine-tune every method gets, then the test split
            (the quantity the proxies should rank) and the reward split's
            cross-entropy (the finalists' score).

LAMP and ERK are also fine-tuned again with other batch orders (`--noise`
draws): the spread of the same allocation's test accuracy is the noise a
better allocation must clear.

  python research/proxy_headroom.py --seeds=0 --targets=0.98
  python research/proxy_headroom.py --report_only

With `--budget=flops` a target is the share of the prunable layers'
multiply-accumulates removed: the free allocations keep their ranking and
meet it in FLOPs (uniform is the same in both), the moves start from uniform
and ERK, and a "flopsaware" move shifts their density towards the layers
whose weights cost few FLOPs. The question is the same: is there headroom a
search can find, now where the parameter-count rules cannot see the budget?

  python research/proxy_headroom.py --budget=flops --seeds=0 \
    --targets=0.95,0.9 --moves=5 --noise=2

Resumable: every allocation's row is written as it finishes and skipped on
a rerun. Writes research/results/proxy_headroom.{json,md,png}.
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
from purl_tf import allocation, config_defaults, experiment, io_utils
from purl_tf import pruning, search_loop, selection, train
from purl_tf.compat import keras

_SEEDS = flags.DEFINE_list('seeds', ['0'], 'Dense nets (benchmark seeds).')
_TARGETS = flags.DEFINE_list('targets', ['0.98'], 'Global targets.')
_MOVES = flags.DEFINE_integer('moves', 10, 'Random moves around each of '
                              'LAMP and ERK.')
_NOISE = flags.DEFINE_integer('noise', 2, 'Extra fine-tunes of LAMP and ERK '
                              'in other batch orders.')
_OUT = flags.DEFINE_string('out', os.path.join(REPO, 'research', 'results'),
                           'Results directory.')
_BUDGET = flags.DEFINE_float('budget_minutes', 0.0, 'Start nothing new after '
                             'this many minutes (0: no limit).')
_REPORT_ONLY = flags.DEFINE_bool('report_only', False, 'Only the report.')
_BUDGET_KIND = flags.DEFINE_enum(
    'budget', 'params', ['params', 'flops'],
    'What a target counts: the share of prunable weights removed (params) '
    'or of their multiply-accumulates (flops). With flops the free '
    'allocations keep their ranking and meet the target in FLOPs, and the '
    'results go to proxy_headroom_flops.*.')

PROXY_BATCHES = 16  # x 128 = 2,048 reward images for the one-shot proxy


def budget_sparsity(infos, sparsity_map):
  """The share of the study's budget (params or FLOPs) an allocation removes."""
  return pruning.budget_sparsity(infos, sparsity_map, _BUDGET_KIND.value)


def scale_to_budget(infos, raw, target):
  """`allocation.scale_densities` in the study's budget; under a FLOPs
  budget no layer above `pruning.MAX_SPARSITY` (as the study measured)."""
  scaled = allocation.scale_densities(infos, raw, target, _BUDGET_KIND.value)
  if _BUDGET_KIND.value == 'params':
    return scaled
  return {n: min(pruning.MAX_SPARSITY, s) for n, s in scaled.items()}


def free_allocation(name, model, infos, target):
  """A free rule's allocation at `target` in the study's budget. LAMP and
  global magnitude keep their global ranking of weights, with the threshold
  moved (by bisection on their parameter target) until the FLOPs removed
  meet the target; ERK, uniform and blends scale their densities."""
  if _BUDGET_KIND.value == 'params':
    return allocation.allocate(name, model, target)
  if name in ('lamp', 'global_magnitude'):
    lo, hi = 0.0, 0.999
    for _ in range(40):
      mid = 0.5 * (lo + hi)
      if budget_sparsity(infos, allocation.allocate(name, model, mid)) < target:
        lo = mid
      else:
        hi = mid
    return allocation.allocate(name, model, hi)
  if name == 'uniform':
    return {i.name: float(target) for i in infos}
  parts = allocation.blend_parts(name) or [name]
  maps = [allocation.allocate(p, model, 0.9) for p in parts]
  raw = {i.name: float(np.exp(np.mean([np.log(1.0 - m[i.name]) for m in maps])))
         for i in infos}
  if name == 'erk':
    raw = {i.name: allocation.erk_raw_density(i.kernel_shape) for i in infos}
  return scale_to_budget(infos, raw, target)


def free_names():
  """The free allocations the study compares against."""
  if _BUDGET_KIND.value == 'flops':
    return ('uniform', 'global_magnitude', 'lamp', 'erk', 'lamp+erk')
  return ('lamp', 'erk', 'lamp+erk')


def move_refs():
  """The free allocations the random moves start from (and whose fine-tune
  noise is measured): under a FLOPs budget uniform, which keeps the most
  weights, and ERK."""
  return ('uniform', 'erk') if _BUDGET_KIND.value == 'flops' else ('lamp',
                                                                     'erk')


def moves(infos, base, target, n, rng):
  """`n` random moves around `base`: 2, 4 or every layer's density times
  2**u, then rescaled to meet `target`."""
  out = []
  for _ in range(n):
    k = int(rng.choice([2, 4, len(infos)]))
    raw = {i.name: max(1e-6, 1.0 - base[i.name]) for i in infos}
    for i in rng.choice(len(infos), k, replace=False):
      raw[infos[i].name] *= 2.0 ** float(rng.choice([-1.0, -0.5, 0.5, 1.0]))
    out.append(scale_to_budget(infos, raw, target))
  return out


def oneshot(env, sparsity_map, dense_probs, batches):
  """Accuracy, cross-entropy and KL to the dense outputs after pruning at
  once and re-estimating BatchNormalization (no fine-tune)."""
  env.reset()
  for info, var in zip(env.infos, env._targets):  # pylint: disable=protected-access
    var.assign(float(sparsity_map[info.name]))
    pruning.prune_now(env._wrappers[info.name], float(sparsity_map[info.name]))  # pylint: disable=protected-access
  env._recalibrate(env._cached_ds, 10)  # pylint: disable=protected-access
  probs, labels = [], []
  for x, y in env._reward_ds.take(batches):  # pylint: disable=protected-access
    probs.append(np.asarray(env.model.predict_on_batch(x), np.float64))
    labels.append(np.asarray(y).reshape(-1))
  p, y = np.concatenate(probs), np.concatenate(labels).astype(int)
  q = np.maximum(dense_probs, 1e-12)
  kl = np.sum(q * (np.log(q) - np.log(np.maximum(p, 1e-12))), axis=1)
  ce = -np.log(np.maximum(p[np.arange(len(y)), y], 1e-12))
  return {'acc': float(np.mean(p.argmax(1) == y)), 'ce': float(ce.mean()),
          'kl': float(kl.mean())}


def short(env, sparsity_map, steps, seed):
  correct = selection.short_correct(env, sparsity_map, steps, seed, 0)
  _, loss = train.per_example(env.model, env._reward_ds)  # pylint: disable=protected-access
  return {'acc': float(np.mean(correct)), 'ce': float(np.mean(loss))}


def final(ctx, sparsity_map, name, order_seed=None):
  """The final fine-tune's test accuracy and reward-split cross-entropy;
  `order_seed` fine-tunes in another batch order (a noise draw)."""
  seed = ctx.config.seed
  if order_seed is not None:
    ctx.config.seed = order_seed
  try:
    ft = experiment.final_finetune(ctx, sparsity_map, method=name,
                                   target=float(ctx.config.prune.sparsity),
                                   verbose=0)
  finally:
    ctx.config.seed = seed
  _, loss = train.per_example(ft.model, ctx.splits.reward)
  return {'test': train.evaluate(ft.model, ctx.splits.test),
          'reward_ce': float(np.mean(loss)), 'finetune_s': ft.wall_s}


def measure(path, payload, deadline):
  for seed in [int(s) for s in _SEEDS.value]:
    config = config_defaults.load(os.path.join(REPO, 'configs',
                                               'fmnist_resnet.py'))
    config.seed = seed
    config.train.cache_dir = os.path.join(REPO, 'benchmarks', 'dense_cache')
    ctx = None
    for target in [float(t) for t in _TARGETS.value]:
      key = f'{seed}@{target}'
      rows = payload['cells'].setdefault(key, {})
      want = list(free_names()) + [
          f'{r}_move{k}' for k in range(_MOVES.value) for r in move_refs()]
      if _BUDGET_KIND.value == 'flops':
        want += [f'{r}_move_flopsaware' for r in move_refs()]
      want += [f'{r}_noise{k}' for r in move_refs()
               for k in range(_NOISE.value)]
      if all(w in rows for w in want):
        continue
      if ctx is None:
        keras.utils.set_random_seed(seed)
        ctx = experiment.prepare(config, f'/tmp/proxy_headroom/{seed}',
                                 verbose=0)
      config.prune.sparsity = target
      env = search_loop.build_env(ctx.dense, ctx.splits.search_train,
                                  ctx.splits.reward, config, ctx.strategy)
      env.reset()
      dense_probs = np.concatenate([
          np.asarray(env.model.predict_on_batch(x), np.float64)
          for x, _ in env._reward_ds.take(PROXY_BATCHES)])  # pylint: disable=protected-access
      infos = env.infos
      allocs = {n: free_allocation(n, ctx.dense, infos, target)
                for n in free_names()}
      for r, ref in enumerate(move_refs()):
        # Each reference's own stream: its first moves are the same
        # whatever --moves asks for, so a run with more extends a run.
        rng = np.random.RandomState(1000 * seed + int(round(target * 100)) +
                                    7919 * r)
        for k, m in enumerate(moves(infos, allocs[ref], target, _MOVES.value,
                                    rng)):
          allocs[f'{ref}_move{k}'] = m
        if _BUDGET_KIND.value == 'flops':
          # What a rule that saw FLOPs would do: density shifted towards the
          # layers whose weights cost few FLOPs (x (flops/weight)**-0.5).
          raw = {i.name: (1.0 - allocs[ref][i.name]) *
                 (i.flops / i.params) ** -0.5 for i in infos}
          allocs[f'{ref}_move_flopsaware'] = scale_to_budget(infos, raw, target)
      for name in want:
        if name in rows:
          if 'sparsity' in rows[name]:  # the same allocation as measured
            np.testing.assert_allclose(
                rows[name]['sparsity'],
                [allocs[name][i.name] for i in infos], atol=1e-9,
                err_msg=f'{key} {name} is another allocation than measured')
          continue
        if time.time() > deadline:
          return False
        t0 = time.perf_counter()
        if '_noise' in name:
          ref, k = name.split('_noise')
          row = {'final': final(ctx, allocs[ref], name,
                                order_seed=seed + 1000 * (int(k) + 1))}
        else:
          m = allocs[name]
          row = {'sparsity': [float(m[i.name]) for i in infos],
                 'oneshot': oneshot(env, m, dense_probs, PROXY_BATCHES),
                 'short30': short(env, m, 30, seed),
                 'budget_sparsity': budget_sparsity(infos, m),
                 'param_sparsity': pruning.global_sparsity(infos, m)}
          if _BUDGET_KIND.value == 'params':
            row['short150'] = short(env, m, 150, seed)
          row['final'] = final(ctx, m, name)
        row['wall_s'] = time.perf_counter() - t0
        rows[name] = row
        io_utils.write_json_atomic(path, payload)
        print(f'{key} {name}: test {row["final"]["test"]:.4f} '
              f'({row["wall_s"]:.0f}s)', flush=True)
  return True


def spearman(a, b):
  ra = np.argsort(np.argsort(a)).astype(float)
  rb = np.argsort(np.argsort(b)).astype(float)
  return float(np.corrcoef(ra, rb)[0, 1]) if len(a) > 2 else float('nan')


PROXIES = (('oneshot', 'acc', 1), ('oneshot', 'ce', -1), ('oneshot', 'kl', -1),
           ('short30', 'acc', 1), ('short30', 'ce', -1),
           ('short150', 'acc', 1), ('short150', 'ce', -1),
           ('final', 'reward_ce', -1))


def report(path_md, path_png, payload):
  budget_note = ('' if _BUDGET_KIND.value == 'params' else
                 ', targets in FLOPs removed')
  lines = ['# Headroom beyond LAMP and ERK, and proxies that rank it '
           f'(fmnist_resnet{budget_note})', '',
           'Per dense net (seed) and target: the free allocations and random '
           'moves around LAMP and ERK; each proxy\'s Spearman rank '
           'correlation with the test accuracy after the final fine-tune '
           '(signed so that higher is better), and the headroom: the best '
           'move\'s test accuracy minus the best free allocation\'s, against '
           'the spread of LAMP\'s and ERK\'s own test accuracy over batch '
           'orders. See `research/proxy_headroom.py`.', '']
  proxies = [x for x in PROXIES if _BUDGET_KIND.value == 'params' or
             x[0] != 'short150']
  header = ('| seed@target | n | ' + ' | '.join(
      f'{p}.{m}' for p, m, _ in proxies) + ' | best free | best move | '
      'headroom (pt) | fine-tune noise std (pt) |')
  lines += [header, '|---' * (len(proxies) + 6) + '|']
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  keys = sorted(payload['cells'])
  proxy_x = 'short150' if _BUDGET_KIND.value == 'params' else 'short30'
  fig, axes = plt.subplots(1, max(1, len(keys)), figsize=(5 * max(1, len(keys)), 4),
                           squeeze=False)
  for ax, key in zip(axes[0], keys):
    rows = payload['cells'][key]
    named = {n: r for n, r in rows.items() if 'oneshot' in r}
    if len(named) < 3:
      lines.append(f'| {key} | {len(named)} |' + ' |' * (len(proxies) + 4))
      continue
    test = np.array([r['final']['test'] for r in named.values()])
    cells = []
    for p, m, sign in proxies:
      vals = np.array([sign * r[p][m] for r in named.values()])
      cells.append(f'{spearman(vals, test):+.2f}')
    free = {n: named[n]['final']['test'] for n in free_names() if n in named}
    movs = {n: r['final']['test'] for n, r in named.items() if '_move' in n}
    best_free = max(free, key=free.get) if free else None
    best_move = max(movs, key=movs.get) if movs else None
    noise = []
    for ref in move_refs():
      draws = [rows[n]['final']['test'] for n in rows
               if n == ref or n.startswith(f'{ref}_noise')]
      if len(draws) > 1:
        noise.append(np.std(draws, ddof=1))
    noise_txt = f'{100 * np.mean(noise):.2f}' if noise else '-'
    head = (f'{100 * (movs[best_move] - free[best_free]):+.2f}'
            if best_free and best_move else '-')
    lines.append(f'| {key} | {len(named)} | ' + ' | '.join(cells) +
                 f' | {best_free} {free.get(best_free, 0):.4f} | '
                 f'{best_move} {movs.get(best_move, 0):.4f} | {head} | '
                 f'{noise_txt} |')
    short = np.array([r[proxy_x]['acc'] for r in named.values()])
    ax.scatter(short, test, c=['tab:red' if n in free else 'tab:blue'
                               for n in named], s=18)
    for ref in move_refs():  # the same allocation in other batch orders
      draws = [rows[n]['final']['test'] for n in rows
               if n == ref or n.startswith(f'{ref}_noise')]
      if ref in named and len(draws) > 1:
        x = named[ref][proxy_x]['acc']
        ax.vlines(x, min(draws), max(draws), colors='tab:red', alpha=0.5)
        ax.annotate(ref, (x, max(draws)), fontsize=8)
    ax.set_xlabel(f'{proxy_x} reward accuracy')
    ax.set_ylabel('test accuracy after the final fine-tune')
    ax.set_title(key)
  fig.tight_layout()
  fig.savefig(path_png, dpi=90)
  plt.close(fig)
  lines += ['', 'Red: free allocations (a bar: LAMP\'s and ERK\'s test '
            'accuracy over batch orders); blue: moves.',
            '', f'![{proxy_x} vs test]({os.path.basename(path_png)})', '']
  for key in keys:
    rows = payload['cells'][key]
    lines += [f'## {key}', '', '| allocation | param sparsity | '
              'oneshot acc / ce / kl | short30 acc / ce | short150 acc / ce | '
              'test | reward ce |', '|---|---|---|---|---|---|---|']
    for n, r in sorted(rows.items(), key=lambda kv: -kv[1]['final']['test']):
      if 'oneshot' not in r:
        lines.append(f'| {n} | | | | | {r["final"]["test"]:.4f} | '
                     f'{r["final"]["reward_ce"]:.4f} |')
        continue
      o, s3 = r['oneshot'], r['short30']
      s15 = r.get('short150', {'acc': float('nan'), 'ce': float('nan')})
      ps = r.get('param_sparsity')
      ps = '' if ps is None else f'{ps:.4f}'
      lines.append(f'| {n} | {ps} | {o["acc"]:.4f} / {o["ce"]:.3f} / {o["kl"]:.3f} | '
                   f'{s3["acc"]:.4f} / {s3["ce"]:.3f} | {s15["acc"]:.4f} / '
                   f'{s15["ce"]:.3f} | {r["final"]["test"]:.4f} | '
                   f'{r["final"]["reward_ce"]:.4f} |')
    lines.append('')
  with open(path_md, 'w') as f:
    f.write('\n'.join(lines) + '\n')


def main(argv):
  del argv
  os.makedirs(_OUT.value, exist_ok=True)
  stem = ('proxy_headroom' if _BUDGET_KIND.value == 'params' else
          'proxy_headroom_flops')
  path = os.path.join(_OUT.value, stem + '.json')
  payload = {'cells': {}}
  if os.path.exists(path):
    with open(path) as f:
      payload = json.load(f)
  if not _REPORT_ONLY.value:
    payload['machine'] = experiment.versions()
    deadline = (time.time() + 60 * _BUDGET.value if _BUDGET.value
                else float('inf'))
    if not measure(path, payload, deadline):
      print('budget reached; run the same command again to continue')
  report(os.path.join(_OUT.value, stem + '.md'),
         os.path.join(_OUT.value, stem + '.png'), payload)
  print(f'wrote {path[:-5]}.md')


if __name__ == '__main__':
  app.run(main)
