"""Plots and a Markdown summary from the outputs of purl-prune / purl-search.

  per_layer_sparsity.png   grouped bars: each run's reached per-layer sparsity
  search_curves.png        episode return and final reward-split accuracy per
                           episode (search runs)
  accuracy_vs_sparsity.png test accuracy against reached sparsity (2+ runs)
  report.md                a table of the runs and the pictures
"""

import json
import os
from typing import Dict, List, Sequence

import numpy as np

from purl_tf import io_utils


# One colour per method in every chart (tab10 order, PuRL first).
METHOD_COLOURS = {
    'purl': 'tab:red', 'uniform': 'tab:grey', 'global_magnitude': 'tab:blue',
    'lamp': 'tab:green', 'erk': 'tab:orange', 'sensitivity': 'tab:purple',
    'purl_paper': 'tab:pink', 'policy': 'tab:red',
}
_EXTRA_COLOURS = ('tab:brown', 'tab:olive', 'tab:cyan', 'black')


def method_colour(method: str) -> str:
  """The colour a method has in every chart (variants of purl get their own
  fixed colour from a small extra palette, by name)."""
  if method in METHOD_COLOURS:
    return METHOD_COLOURS[method]
  return _EXTRA_COLOURS[sum(map(ord, method)) % len(_EXTRA_COLOURS)]


def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def _save(plt, fig, path: str):
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def load_run(workdir: str) -> dict:
  """Reads a run's summary.json (required) and search outputs (optional).

  Raises:
    ValueError: the workdir holds no finished run.
  """
  path = os.path.join(workdir, 'summary.json')
  if not os.path.exists(path):
    raise ValueError(f'{workdir} holds no summary.json: not a finished '
                     'purl-prune or purl-search run')
  with open(path) as f:
    run = {'workdir': workdir, 'summary': json.load(f)}
  run['episodes'] = io_utils.read_jsonl(os.path.join(workdir, 'episodes.jsonl'))
  return run


def label(run: dict) -> str:
  s = run['summary']
  return f'{s["method"]} @{s["target_sparsity"]:.2f} ({os.path.basename(run["workdir"].rstrip("/"))})'


def plot_per_layer(runs: Sequence[dict], path: str, labels=None):
  """Grouped bars of reached per-layer sparsity, one group per layer."""
  plt = _pyplot()
  layers = list(runs[0]['summary']['per_layer_sparsity'])
  width = 0.8 / len(runs)
  # Wide enough to read, never wider than a page.
  fig, ax = plt.subplots(figsize=(min(14, max(6, 0.12 * len(layers) * len(runs) + 2)), 4.5))
  x = np.arange(len(layers))
  for k, run in enumerate(runs):
    values = [run['summary']['per_layer_sparsity'].get(n, 0.0) for n in layers]
    ax.bar(x + k * width, values, width,
           label=labels[k] if labels else label(run),
           color=method_colour(labels[k] if labels else run['summary']['method']))
  ax.set_xticks(x + width * (len(runs) - 1) / 2)
  ax.set_xticklabels(layers, rotation=60 if len(layers) > 6 else 0, ha='right'
                     if len(layers) > 6 else 'center', fontsize=8)
  ax.set_ylabel('sparsity (fraction of the layer\'s weights pruned)')
  ax.set_xlabel('prunable layer (model order)')
  ax.set_ylim(0, 1)
  ax.set_title('per-layer sparsity')
  ax.legend(fontsize=8, loc='upper left', bbox_to_anchor=(1.0, 1.0))
  _save(plt, fig, path)


def plot_search(episodes: List[dict], path: str, title='PuRL search'):
  """Two panels over episodes: the final reward-split accuracy (what the
  best episode is chosen by), and the episode return.

  Separate panels rather than twin axes: with the `accuracy_delta` reward the
  return is the final accuracy minus the dense one, and two axes would draw
  one line on top of the other.
  """
  plt = _pyplot()
  fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True,
                                    gridspec_kw={'height_ratios': [3, 2]})
  colour = method_colour('purl')
  kinds = [('demo', 's', 'black', 'reference (free allocation)'),
           ('greedy', 'o', colour, 'greedy episode'),
           ('', '.', colour, 'exploring episode')]

  def kind(e):
    return 'demo' if e.get('demo') else 'greedy' if e.get('greedy') else ''

  ep = [e['episode'] + 1 for e in episodes]
  final = [e['accuracies'][-1] for e in episodes]
  for name, marker, col, text in kinds:
    pts = [(x, y) for x, y, e in zip(ep, final, episodes) if kind(e) == name]
    if pts:
      top.plot(*zip(*pts), marker, color=col, ls='none', label=text,
               mfc='none' if marker in 'so' else col)
  top.plot(ep, np.maximum.accumulate(final), '--', color=colour,
           label='best so far')
  top.set_ylabel('reward-split accuracy\nafter the last layer (fraction)')
  top.legend(fontsize=7, loc='best')
  top.set_title(title)
  bottom.plot(ep, [e['return'] for e in episodes], '.-', color='dimgrey')
  bottom.set_ylabel('episode return')
  bottom.set_xlabel('episode')
  _save(plt, fig, path)


def plot_accuracy_vs_sparsity(points: Dict[str, List[tuple]], path: str,
                              dense_accuracy=None, title='test accuracy vs sparsity'):
  """`points`: {method: [(sparsity, accuracy), ...]}."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(6, 4))
  for method, pts in sorted(points.items()):
    pts = sorted(pts)
    ax.plot([p[0] for p in pts], [p[1] for p in pts], 'o-', label=method,
            color=method_colour(method))
  if dense_accuracy is not None:
    ax.axhline(dense_accuracy, color='grey', ls=':', label='dense')
  ax.set_xlabel('reached global sparsity (fraction of prunable weights)')
  ax.set_ylabel('test accuracy (fraction correct)')
  ax.set_title(title)
  ax.legend(fontsize=8)
  _save(plt, fig, path)


def comparison(runs: Sequence[dict]) -> str:
  """A plain-text table of runs, best pruned test accuracy first.

  Args:
    runs: from `load_run`.

  Returns:
    One header line and one line per run, each with the method, the reached
    sparsity, the pruned test accuracy, its change from the dense net's, the
    gzip size ratio and the gzipped SavedModel's kilobytes, and the TFLite
    files' kilobytes where a run wrote them (export.tflite); the header says
    whether the runs share one dense net.
  """
  dense = {round(r['summary']['dense_test_accuracy'], 6) for r in runs}
  head = ('same dense net (test accuracy {:.4f})'.format(dense.pop())
          if len(dense) == 1 else 'different dense nets')
  formats = [f for f in ('float32', 'int8')
             if any(f in (r['summary'].get('tflite') or {}) for r in runs)]
  names = {'float32': 'tflite KB', 'int8': 'int8 KB'}
  lines = [head, f'  {"method":<18} {"sparsity":>8} {"test acc":>9} '
           f'{"vs dense":>9} {"gzip vs dense":>14} {"saved gz KB":>11}' +
           ''.join(f' {names[f]:>9}' for f in formats)]
  for run in sorted(runs, key=lambda r: -r['summary']['pruned_test_accuracy']):
    s = run['summary']
    delta = s['pruned_test_accuracy'] - s['dense_test_accuracy']
    tflite = s.get('tflite') or {}
    lines.append(f'  {s["method"]:<18} {s["reached_global_sparsity"]:>8.4f} '
                 f'{s["pruned_test_accuracy"]:>9.4f} {delta:>+9.4f} '
                 f'{s["gzip_bytes"]["ratio"]:>13.3f}x '
                 f'{s["gzip_bytes"]["pruned"] / 1000:>11.1f}' + ''.join(
                     f' {tflite[f]["bytes"] / 1000:>9.1f}' if f in tflite
                     else f' {"-":>9}' for f in formats))
  if formats:
    dense_kb = {f: next(r['summary']['tflite'][f]['dense_bytes'] for r in runs
                        if f in (r['summary'].get('tflite') or {})) / 1000
                for f in formats}
    lines.append(f'  {"(dense net)":<18} {0.0:>8.4f} {"":>9} {"":>9} '
                 f'{1.0:>13.3f}x '
                 f'{runs[0]["summary"]["gzip_bytes"]["dense"] / 1000:>11.1f}' +
                 ''.join(f' {dense_kb[f]:>9.1f}' for f in formats))
  return '\n'.join(lines)


def render(workdirs: Sequence[str], out_dir: str) -> str:
  """Writes the PNGs and report.md for one or more runs; returns report.md."""
  runs = [load_run(w) for w in workdirs]
  os.makedirs(out_dir, exist_ok=True)
  lines = ['# purl_tf report', '',
           '| run | method | target | reached | dense test acc | pruned test acc '
           '| gzip vs dense | total wall s |', '|---|---|---|---|---|---|---|---|']
  for run in runs:
    s = run['summary']
    total = (s.get('wall_s') or {}).get('total')
    total = f'{total:.0f}' if total is not None else '-'
    lines.append(
        f'| {run["workdir"]} | {s["method"]} | {s["target_sparsity"]:.3f} | '
        f'{s["reached_global_sparsity"]:.4f} | {s["dense_test_accuracy"]:.4f} | '
        f'{s["pruned_test_accuracy"]:.4f} | {s["gzip_bytes"]["ratio"]:.3f} | '
        f'{total} |')
  plot_per_layer(runs, os.path.join(out_dir, 'per_layer_sparsity.png'))
  lines += ['', '![per-layer sparsity](per_layer_sparsity.png)']
  for k, run in enumerate(runs):
    if run['episodes']:
      name = 'search_curves.png' if k == 0 else f'search_curves_{k}.png'
      plot_search(run['episodes'], os.path.join(out_dir, name), label(run))
      best = run['summary'].get('search', {})
      lines += ['', f'Search of {run["workdir"]}: {len(run["episodes"])} '
                f'episodes, best from episode {best.get("best_episode", 0) + 1}.',
                '', f'![search]({name})']
  if len(runs) > 1:
    points: Dict[str, List[tuple]] = {}
    for run in runs:
      s = run['summary']
      points.setdefault(s['method'], []).append(
          (s['reached_global_sparsity'], s['pruned_test_accuracy']))
    plot_accuracy_vs_sparsity(points, os.path.join(out_dir, 'accuracy_vs_sparsity.png'),
                              runs[0]['summary']['dense_test_accuracy'])
    lines += ['', '![accuracy vs sparsity](accuracy_vs_sparsity.png)']
  path = os.path.join(out_dir, 'report.md')
  with open(path, 'w') as f:
    f.write('\n'.join(lines) + '\n')
  return path


def plot_accuracy_vs_target(stats: Dict[str, List[tuple]], path: str,
                            dense=None, title='test accuracy vs target'):
  """Mean test accuracy with one-std error bars over seeds.

  Args:
    stats: `{method: [(target, mean, std, n), ...]}`.
    path: the PNG to write.
    dense: `(mean, std)` of the dense nets' test accuracy, or None.
    title: the chart's title.
  """
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(7, 4.5))
  methods = sorted(stats)
  offsets = np.linspace(-0.003, 0.003, len(methods)) if len(methods) > 1 else [0]
  for off, method in zip(offsets, methods):
    pts = sorted(stats[method])
    ax.errorbar([p[0] + off for p in pts], [p[1] for p in pts],
                yerr=[p[2] for p in pts], fmt='o-', capsize=3, ms=4,
                label=method, color=method_colour(method))
  if dense is not None:
    ax.axhspan(dense[0] - dense[1], dense[0] + dense[1], color='grey',
               alpha=0.15)
    ax.axhline(dense[0], color='grey', ls=':', label='dense')
  ax.set_xlabel('target global sparsity (fraction of prunable weights)')
  ax.set_ylabel('test accuracy (mean ± std over seeds)')
  ax.set_title(title)
  ax.legend(fontsize=8)
  _save(plt, fig, path)
