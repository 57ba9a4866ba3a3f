r"""Does PuRL beat the allocations a user would otherwise pick, and at what cost?

On Fashion-MNIST (Debian's package), for each net and global target, every
allocation method is pruned from the *same* trained dense network through the
same code path and the same final fine-tune (epochs, optimiser, schedule,
seed): `uniform`, `global_magnitude`, `sensitivity` and `purl` (the search at
its default config). All figures come from one run, side by side.

  python benchmarks/fmnist.py --quick            # a few minutes
  python benchmarks/fmnist.py                    # the full run (hours on 2 cores)
  python benchmarks/fmnist.py --nets=fmnist_cnn --targets=0.9,0.95

Writes benchmarks/results/fmnist{,_quick}.json, .md and PNG plots.
"""

import json
import os
import platform
import resource
import sys
import time

from absl import app
from absl import flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import purl_tf  # pylint: disable=g-import-not-at-top,unused-import
from purl_tf import allocation, config_defaults, experiment, io_utils, pruning, report
from purl_tf import search_loop
from purl_tf.compat import keras
import psutil  # pylint: disable=g-import-not-at-top

_QUICK = flags.DEFINE_bool('quick', False, 'Smoke-sized run: one net, one '
                           'target, tiny budgets.')
_NETS = flags.DEFINE_list('nets', ['fmnist_cnn', 'fmnist_resnet'], 'Nets.')
_TARGETS = flags.DEFINE_list('targets', ['0.8', '0.9', '0.95', '0.98'],
                             'Global target sparsities.')
_METHODS = flags.DEFINE_list('methods', ['uniform', 'global_magnitude',
                                         'sensitivity', 'purl'], 'Methods.')
_OUT = flags.DEFINE_string('out', os.path.join(REPO, 'benchmarks', 'results'),
                           'Results directory.')
_WORKDIR = flags.DEFINE_string('workdir', '/tmp/purl_bench', 'Run outputs.')
_TAG = flags.DEFINE_string('tag', '', 'Names the outputs fmnist_TAG.* (for '
                           'ablations run with --override).')
_VARIANTS = flags.DEFINE_multi_string(
    'variant', [], 'An extra PuRL method NAME:key=value[,key=value...] (run '
    'as method purl_NAME at --variant_targets), for ablations side by side '
    'with the default search, e.g. long:search.episodes=40.')
_VARIANT_TARGETS = flags.DEFINE_list('variant_targets', ['0.9'],
                                     'Targets the variants run at.')
_KEEP_OTHER_NETS = flags.DEFINE_bool(
    'keep_other_nets', True, 'Keep the rows of nets not in --nets from the '
    'existing results file (each net is compared within one run).')
_OVERRIDES = flags.DEFINE_multi_string(
    'override', [], 'config overrides as key=value (e.g. search.episodes=20).')


def rss_mb() -> float:
  return psutil.Process().memory_info().rss / 2**20


def peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def net_config(net: str, quick: bool, extra=()):
  config = config_defaults.load(os.path.join(REPO, 'configs', f'{net}.py') +
                                (':smoke' if quick else ''))
  for item in list(_OVERRIDES.value) + list(extra):
    key, value = item.split('=', 1)
    node = config
    *path, leaf = key.split('.')
    for part in path:
      node = node[part]
    node[leaf] = type(node[leaf])(value) if not isinstance(node[leaf], bool) else (
        value.lower() in ('1', 'true'))
  return config


def action_space_for(config, target: float):
  """The default grid tops out at 0.95; a 98% target needs a higher maximum."""
  if target > config.env.action_max - 0.01:
    config.env.action_max = min(0.995, target + (1 - target) / 2)
    config.env.action_step = config.env.action_max / 19
  return config


def run_purl(ctx, config, target):
  config = action_space_for(config, target)
  config.prune.sparsity = target
  # As purl-search does: the search's cached batches come from a pipeline
  # shuffled once, so they do not depend on which methods ran before.
  env = search_loop.build_env(ctx.dense, ctx.splits.search_train,
                              ctx.splits.reward, config, ctx.strategy)
  loop = search_loop.SearchLoop(env, config, workdir=None, verbose=True)
  samples = {}

  def on_episode(record):
    samples[record['episode'] + 1] = rss_mb()
  state = loop.run(on_episode)
  return loop.policy(ctx.dense).sparsity, state, samples, loop


def profile(records):
  ft = sum(r['finetune_s'] for r in records)
  ev = sum(r['eval_s'] for r in records)
  wall = sum(r['wall_s'] for r in records)
  return {'finetune_share': ft / wall, 'eval_share': ev / wall,
          'other_share': (wall - ft - ev) / wall, 'episode_s': wall / len(records)}


def benchmark_net(net, targets, methods, quick, workdir):
  """Yields `(row, per-net extras)` after each method at each target."""
  config = net_config(net, quick)
  os.makedirs(workdir, exist_ok=True)
  ctx = experiment.prepare(config, workdir, verbose=2)
  dense_s = ctx.dense_train_s
  extras = {'dense_test_accuracy': ctx.dense_test_accuracy,
                         'dense_train_s': dense_s, 'purl': {}}
  scan = None
  variants = dict(v.split(':', 1) for v in _VARIANTS.value)
  variant_targets = [float(t) for t in _VARIANT_TARGETS.value]
  for target in targets:
    run_methods = list(methods)
    if any(abs(target - t) < 1e-9 for t in variant_targets):
      run_methods += [f'purl_{name}' for name in variants]
    for method in run_methods:
      keras.utils.set_random_seed(int(config.seed))
      t0 = time.perf_counter()
      record_extra = {}
      if method == 'purl' or method.startswith('purl_'):
        extra = variants[method[5:]].split(',') if method != 'purl' else ()
        run_cfg = net_config(net, quick, extra)
        sparsity_map, state, samples, loop = run_purl(ctx, run_cfg, target)
        records = loop.records
        record_extra = {
            'search_s': state.search_s,
            'episodes': state.episode,
            'best_episode': state.best['episode'] + 1,
            'episode_global_sparsity': state.best['global_sparsity'],
            'step_profile': profile(records),
            'rss_mb_after_episode_5': samples.get(5),
            'rss_mb_after_last_episode': samples.get(state.episode),
        }
        if extra:
          record_extra['variant_overrides'] = list(extra)
        extras.setdefault(method, {})[str(target)] = {
            'returns': [r['return'] for r in records],
            'greedy': [r['greedy'] for r in records]}
        del loop
      elif method == 'sensitivity':
        if scan is None:
          s0 = time.perf_counter()
          scan = allocation.sensitivity_scan(
              ctx.dense, ctx.splits.reward,
              eval_batches=int(config.search.eval_batches),
              calibration_ds=ctx.splits.train,
              bn_batches=int(config.search.bn_batches))
          extras['sensitivity_scan_s'] = time.perf_counter() - s0
        sparsity_map = allocation.pick_by_sensitivity(
            pruning.prunable_layers(ctx.dense), scan, target)
      else:
        sparsity_map = allocation.allocate(method, ctx.dense, target)
      alloc_s = time.perf_counter() - t0
      ctx.workdir = os.path.join(workdir, f'{method}_{target}')
      os.makedirs(ctx.workdir, exist_ok=True)
      summary = experiment.finish(ctx, sparsity_map, target=target, method=method,
                                  verbose=0)
      wall = alloc_s + summary['wall_s']['finetune']
      row = {'net': net, 'method': method, 'target': target,
             'test_accuracy': summary['pruned_test_accuracy'],
             'sparsity': summary['reached_global_sparsity'],
             'per_layer_sparsity': summary['per_layer_sparsity'],
             'gzip_ratio': summary['gzip_bytes']['ratio'],
             'allocation_s': alloc_s, 'finetune_s': summary['wall_s']['finetune'],
             'wall_s': wall, 'wall_over_dense_train': wall / dense_s if dense_s else None,
             **record_extra}
      print(f'{net} {method} @{target}: test acc {row["test_accuracy"]:.4f} '
            f'sparsity {row["sparsity"]:.4f} wall {wall:.0f}s', flush=True)
      yield row, extras


def write_markdown(path, payload):
  rows = payload['results']
  lines = ['# Fashion-MNIST: PuRL against the allocations a user would pick', '',
           f'Machine: {payload["machine"]["processor"]}, {payload["machine"]["cpus"]} '
           f'CPUs; TensorFlow {payload["versions"]["tensorflow"]}; seed '
           f'{payload["seed"]}; {"quick" if payload["quick"] else "full"} run. '
           'Every method prunes the same dense net with the same final '
           'fine-tune; wall time = allocation (search, scan) + final fine-tune.', '']
  if payload.get('overrides'):
    lines += ['Config overrides: ' + ', '.join(f'`{o}`' for o in payload['overrides'])
              + '.', '']
  if payload.get('partial'):
    lines += ['**Partial**: the run was still going (or was stopped) when this '
              'was written.', '']
  for net, extra in payload['nets'].items():
    run = payload.get('runs', {}).get(net, {})
    lines += [f'## {net}', '']
    if run:
      lines += [f'Run started {run["started"]}' + (
          '; overrides ' + ', '.join(f'`{o}`' for o in run['overrides'])
          if run.get('overrides') else '') + '.', '']
    lines += [
              f'Dense: test accuracy {extra["dense_test_accuracy"]:.4f}, '
              f'training {extra["dense_train_s"]:.0f} s.', '',
              '| target | method | test accuracy | reached sparsity | gzip vs dense '
              '| wall s | wall / dense training |', '|---|---|---|---|---|---|---|']
    for r in rows:
      if r['net'] != net:
        continue
      ratio = (f'{r["wall_over_dense_train"]:.2f}x'
               if r['wall_over_dense_train'] else '-')
      lines.append(f'| {r["target"]:.2f} | {r["method"]} | {r["test_accuracy"]:.4f} | '
                   f'{r["sparsity"]:.4f} | {r["gzip_ratio"]:.3f} | {r["wall_s"]:.0f} '
                   f'| {ratio} |')
    purl = [r for r in rows if r['net'] == net and r['method'].startswith('purl')]
    if purl:
      lines += ['', '| target | method | episodes | best at | search s | '
                'fine-tune share | eval share | other share | '
                'RSS after ep 5 / last (MB) |',
                '|---|---|---|---|---|---|---|---|---|']
      for r in purl:
        p = r['step_profile']
        lines.append(
            f'| {r["target"]:.2f} | {r["method"]} | {r["episodes"]} | '
            f'{r["best_episode"]} | '
            f'{r["search_s"]:.0f} | {p["finetune_share"]:.1%} | {p["eval_share"]:.1%} '
            f'| {p["other_share"]:.1%} | {r["rss_mb_after_episode_5"] or 0:.0f} / '
            f'{r["rss_mb_after_last_episode"] or 0:.0f} |')
    lines += ['', f'![accuracy vs sparsity]({net}_accuracy_vs_sparsity.png)',
              f'![per-layer sparsity at 90%]({net}_per_layer_0.9.png)',
              f'![PuRL returns]({net}_purl_returns.png)', '']
  variants = sorted({(r['method'], ', '.join(r['variant_overrides']))
                      for r in rows if r.get('variant_overrides')})
  if variants:
    lines += ['Variants (ablations of the default search, same dense net and '
              'final fine-tune): ' + '; '.join(f'`{m}`: `{o}`' for m, o in variants)
              + '.', '']
  lines.append(f'Peak RSS: {payload["peak_rss_mb"]:.0f} MB.')
  with open(path, 'w') as f:
    f.write('\n'.join(lines) + '\n')


def plots(out, prefix, payload):
  for net, extra in payload['nets'].items():
    rows = [r for r in payload['results'] if r['net'] == net]
    points = {}
    for r in rows:
      points.setdefault(r['method'], []).append((r['sparsity'], r['test_accuracy']))
    report.plot_accuracy_vs_sparsity(
        points, os.path.join(out, f'{prefix}{net}_accuracy_vs_sparsity.png'),
        extra['dense_test_accuracy'], title=f'{net}: test accuracy vs sparsity')
    at90 = [r for r in rows if abs(r['target'] - 0.9) < 1e-6]
    if at90:
      report.plot_per_layer([{'summary': {'per_layer_sparsity': r['per_layer_sparsity']}}
                             for r in at90],
                            os.path.join(out, f'{prefix}{net}_per_layer_0.9.png'),
                            labels=[r['method'] for r in at90])
    curves = extra['purl'].get('0.9') or next(iter(extra['purl'].values()), None)
    if curves:
      report.plot_search([{'episode': k, 'return': r, 'greedy': g, 'accuracies': [0]}
                          for k, (r, g) in enumerate(zip(curves['returns'],
                                                         curves['greedy']))],
                         os.path.join(out, f'{prefix}{net}_purl_returns.png'),
                         f'{net}: PuRL episode return')


def write_outputs(name, prefix, payload):
  os.makedirs(_OUT.value, exist_ok=True)
  io_utils.write_json_atomic(os.path.join(_OUT.value, f'{name}.json'), payload)
  plots(_OUT.value, prefix, payload)
  write_markdown(os.path.join(_OUT.value, f'{name}.md'), payload)
  if prefix:
    # The plots of a quick or tagged run carry its prefix.
    md = os.path.join(_OUT.value, f'{name}.md')
    text = open(md).read().replace('](fmnist', f']({prefix}fmnist')
    open(md, 'w').write(text)


def main(argv):
  del argv
  quick = _QUICK.value
  nets = ['fmnist_cnn'] if quick and _NETS.present == 0 else _NETS.value
  targets = [0.9] if quick and _TARGETS.present == 0 else [float(t) for t in _TARGETS.value]
  name = 'fmnist_quick' if quick else 'fmnist'
  prefix = 'quick_' if quick else ''
  if _TAG.value:
    name, prefix = f'fmnist_{_TAG.value}', f'{_TAG.value}_'
  start = time.perf_counter()
  results, per_net, runs = [], {}, {}
  previous = os.path.join(_OUT.value, f'{name}.json')
  if _KEEP_OTHER_NETS.value and os.path.exists(previous):
    # Each net's comparison is one run (one dense net); nets not run now keep
    # the rows of the run that measured them.
    with open(previous) as f:
      old = json.load(f)
    results = [r for r in old['results'] if r['net'] not in nets]
    per_net = {k: v for k, v in old['nets'].items() if k not in nets}
    runs = {k: v for k, v in old.get('runs', {}).items() if k not in nets}

  def save(partial):
    payload = {
        'quick': quick, 'seed': 0, 'overrides': _OVERRIDES.value,
        'results': results, 'nets': per_net, 'runs': runs,
        'machine': experiment.versions(), 'versions': experiment.versions(),
        'peak_rss_mb': peak_rss_mb(), 'total_s': time.perf_counter() - start,
        'platform': platform.platform(), 'partial': partial,
    }
    write_outputs(name, prefix, payload)

  for net in nets:
    runs[net] = {'started': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
                 'targets': targets, 'methods': _METHODS.value,
                 'overrides': _OVERRIDES.value}
    for row, extra in benchmark_net(net, targets, _METHODS.value, quick,
                                     os.path.join(_WORKDIR.value, net)):
      # Written after every row, so that a long run that is stopped keeps
      # what it measured ("partial": true until the end).
      results.append(row)
      per_net[net] = extra
      save(partial=True)
  save(partial=False)
  print(f'wrote {os.path.join(_OUT.value, name)}.json/.md')


if __name__ == '__main__':
  app.run(main)
