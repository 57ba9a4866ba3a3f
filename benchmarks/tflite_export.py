r"""TFLite sizes, accuracy and CPU latency of pruned fmnist_resnet nets.

For the cached dense `fmnist_resnet` (seed 0) and LAMP at each target, with
the final fine-tune every run gets:

  sizes     the gzipped SavedModel (what `summary.json` reports), the TFLite
            float32 file with and without the sparse weight format, and the
            int8 (dynamic-range) file with it, against the dense net's files
            converted the same way;
  accuracy  test accuracy of the Keras net and of each TFLite file, and how
            often the float32 file's top-1 agrees with Keras;
  latency   one image at a time through the TFLite interpreter, the sparse
            and the dense-format float32 file side by side (interleaved, in
            this one process), with XNNPACK and with TFLite's builtin
            kernels: XNNPACK's sparse kernels are only taken on ARM, so on
            x86 this measures what the format costs, not what it buys.

and MobileNet-V2 (`:smoke`, untrained, LAMP 90%): which of its prunable
layers the converter stores sparse.

  python benchmarks/tflite_export.py                  # ~10 min on 2 CPU cores
  python benchmarks/tflite_export.py --targets=0.9 --latency_runs=50

Writes benchmarks/results/tflite_fmnist_resnet.{json,md,png}
(`--report_only` rewrites the Markdown and PNG from the JSON).
"""

import json
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
from purl_tf import allocation, config_defaults, experiment, export, io_utils
from purl_tf import models, pruning, tflite_export, train
from purl_tf.compat import keras, tf

_TARGETS = flags.DEFINE_list('targets', ['0.9', '0.95', '0.98'], 'Targets.')
_RUNS = flags.DEFINE_integer('latency_runs', 300, 'Timed single-image '
                             'invocations per file and kernel set.', lower_bound=10)
_OUT = flags.DEFINE_string('out', os.path.join(REPO, 'benchmarks', 'results'),
                           'Results directory.')
_REPORT_ONLY = flags.DEFINE_bool('report_only', False, 'Only rewrite the '
                                 'Markdown and PNG from the JSON.')


def dense_format(model: keras.Model) -> bytes:
  """The float32 file without the sparse format (what users get by default)."""
  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [export.serving_function(model)], model)
  return converter.convert()


def latencies(files, images, runs):
  """Median and 90th-percentile milliseconds per image for each file and
  kernel set, interleaved so that a slow moment of the machine hits all."""
  runners = {(name, kernels): tflite_export.Runner(data, num_threads=1,
                                                   xnnpack=kernels == 'xnnpack')
             for name, data in files.items() for kernels in ('xnnpack', 'builtin')}
  times = {key: [] for key in runners}
  for run in runners.values():
    run(images[:1])  # allocates
  for k in range(runs):
    x = images[k % len(images)][None]
    for key, run in runners.items():
      t0 = time.perf_counter()
      run(x)
      times[key].append(1000 * (time.perf_counter() - t0))
  return {f'{name}/{kernels}': {
      'median_ms': statistics.median(t),
      'p90_ms': float(np.percentile(t, 90)),
      'kernels_used': runners[(name, kernels)].delegate}
          for (name, kernels), t in times.items()}


def measure_resnet(targets, runs):
  config = config_defaults.load(os.path.join(REPO, 'configs',
                                             'fmnist_resnet.py'))
  config.train.cache_dir = os.path.join(REPO, 'benchmarks', 'dense_cache')
  keras.utils.set_random_seed(0)
  ctx = experiment.prepare(config, '/tmp/tflite_export_benchmark', verbose=0)
  images = np.concatenate([x.numpy() for x, _ in ctx.splits.test.take(4)])
  dense = {'float32': tflite_export.convert(ctx.dense, 'float32'),
           'int8': tflite_export.convert(ctx.dense, 'int8'),
           'float32_dense_format': dense_format(ctx.dense)}
  rows = {'dense': {
      'test_accuracy': ctx.dense_test_accuracy,
      'saved_model_gzip_bytes': export.gzip_size_of_model(ctx.dense),
      'bytes': {k: len(v) for k, v in dense.items()}}}
  for target in targets:
    sparsity = allocation.allocate('lamp', ctx.dense, target)
    ft = experiment.final_finetune(ctx, sparsity, method='lamp', target=target,
                                   verbose=0)
    files = {'float32': tflite_export.convert(ft.model, 'float32'),
             'int8': tflite_export.convert(ft.model, 'int8'),
             'float32_dense_format': dense_format(ft.model)}
    checks = {k: tflite_export.check(v, ft.model, ctx.splits.test)
              for k, v in files.items() if k != 'float32_dense_format'}
    row = {'test_accuracy': train.evaluate(ft.model, ctx.splits.test),
           'saved_model_gzip_bytes': export.gzip_size_of_model(ft.model),
           'bytes': {k: len(v) for k, v in files.items()},
           'checks': checks,
           'sparse_tensors': len(tflite_export.sparse_weights(files['float32'])),
           'prunable_layers': len(pruning.prunable_layers(ft.model))}
    if target in (min(targets), max(targets)):
      row['latency'] = latencies(
          {'sparse_format': files['float32'],
           'dense_format': files['float32_dense_format']}, images, runs)
    rows[f'{target:g}'] = row
    print(f'lamp {target:g}: test {row["test_accuracy"]:.4f}, bytes '
          f'{row["bytes"]}', flush=True)
  return rows


def measure_mobilenet():
  config = config_defaults.load(os.path.join(
      REPO, 'configs', 'mobilenet_v2_imagenet.py') + ':smoke')
  size = int(config.data.image_size)
  keras.utils.set_random_seed(0)
  model = models.build(config.model, (size, size, 3), 10)
  sparsity = allocation.allocate('lamp', model, 0.9)
  stripped = pruning.pruned_at_once(model, sparsity)
  stored = tflite_export.sparse_weights(tflite_export.convert(stripped))
  layers = []
  for info in pruning.prunable_layers(model):
    # TFLite names a tensor after the ops it feeds ('.../block_7_depthwise/
    # depthwise1'); a layer is stored sparse when one of them names it.
    sparse = any(f'/{info.name}/' in name for name in stored)
    layers.append({'layer': info.name, 'kind': info.kind,
                   'sparsity': sparsity[info.name], 'params': info.params,
                   'stored_sparse': sparse})
  return {'layers': layers}


def plot_sizes(payload, path_png):
  """Bars: each file's KB against the target, the dense net's at 0."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  rows = payload['resnet']
  keys = list(rows)
  series = (('SavedModel gzip', lambda r: r['saved_model_gzip_bytes']),
            ('TFLite float32 sparse', lambda r: r['bytes']['float32']),
            ('TFLite float32 dense format',
             lambda r: r['bytes']['float32_dense_format']),
            ('TFLite int8 sparse', lambda r: r['bytes']['int8']))
  fig, ax = plt.subplots(figsize=(7, 3.5))
  width = 0.8 / len(series)
  for k, (name, get) in enumerate(series):
    ax.bar([i + k * width for i in range(len(keys))],
           [get(rows[key]) / 1000 for key in keys], width, label=name)
  ax.set_xticks([i + 0.4 - width / 2 for i in range(len(keys))])
  ax.set_xticklabels(['dense' if k == 'dense' else f'{float(k):.0%}'
                      for k in keys])
  ax.set_ylabel('KB')
  ax.set_title('fmnist_resnet files by target sparsity (LAMP)')
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path_png, dpi=90)
  plt.close(fig)


def write_report(payload, path_md):
  dense = payload['resnet']['dense']
  lines = ['# TFLite files of pruned fmnist_resnet nets', '',
           'LAMP allocations of the cached dense net (seed 0), each with the '
           'final fine-tune; sizes in KB (1,000 bytes). "sparse" files are '
           'what `export.tflite` writes (`tf.lite.Optimize.EXPERIMENTAL_'
           'SPARSITY`); "dense format" is the converter without it. See '
           '`benchmarks/tflite_export.py`.', '',
           '| target | test acc (Keras) | SavedModel gzip | TFLite float32 '
           'sparse | float32 dense format | TFLite int8 sparse | int8 test acc '
           '| float32 agrees with Keras |', '|---|---|---|---|---|---|---|---|']
  kb = lambda b: f'{b / 1000:,.1f}'  # pylint: disable=unnecessary-lambda-assignment
  lines.append(f'| dense | {dense["test_accuracy"]:.4f} | '
               f'{kb(dense["saved_model_gzip_bytes"])} | '
               f'{kb(dense["bytes"]["float32"])} | '
               f'{kb(dense["bytes"]["float32_dense_format"])} | '
               f'{kb(dense["bytes"]["int8"])} | | |')
  targets = [k for k in payload['resnet'] if k != 'dense']
  for t in targets:
    r = payload['resnet'][t]
    lines.append(
        f'| {float(t):.0%} | {r["test_accuracy"]:.4f} | '
        f'{kb(r["saved_model_gzip_bytes"])} | {kb(r["bytes"]["float32"])} | '
        f'{kb(r["bytes"]["float32_dense_format"])} | {kb(r["bytes"]["int8"])} | '
        f'{r["checks"]["int8"]["accuracy"]:.4f} | '
        f'{r["checks"]["float32"]["agreement"]:.2%} |')
  lines += ['', '![sizes](tflite_fmnist_resnet.png)', '', '## Latency on this CPU (one image, one thread)', '',
            f'Median (90th percentile) ms per image over '
            f'{payload["latency_runs"]} interleaved runs. Machine: '
            f'{payload["machine"].get("cpu", "?")}.', '',
            '| target | file | XNNPACK | builtin kernels |', '|---|---|---|---|']
  for t in targets:
    lat = payload['resnet'][t].get('latency')
    if not lat:
      continue
    for name in ('sparse_format', 'dense_format'):
      cells = []
      for kernels in ('xnnpack', 'builtin'):
        x = lat[f'{name}/{kernels}']
        used = ('' if x['kernels_used'] == kernels else
                f' (ran on {x["kernels_used"]})')
        cells.append(f'{x["median_ms"]:.2f} ({x["p90_ms"]:.2f}){used}')
      lines.append(f'| {float(t):.0%} | {name.replace("_", " ")} | '
                   f'{cells[0]} | {cells[1]} |')
  mob = payload['mobilenet']['layers']
  sparse = [l for l in mob if l['stored_sparse']]
  lines += ['', '## Which layers TFLite stores sparse (MobileNet-V2 :smoke, '
            'LAMP 90%)', '',
            f'{len(sparse)} of {len(mob)} prunable layers; by kind: ' +
            ', '.join(f'{kind} {sum(l["stored_sparse"] for l in mob if l["kind"] == kind)}'
                      f'/{sum(l["kind"] == kind for l in mob)}'
                      for kind in ('conv', 'depthwise', 'dense')) + '.', '',
            '| layer | kind | sparsity | stored sparse |', '|---|---|---|---|']
  for l in mob:
    lines.append(f'| {l["layer"]} | {l["kind"]} | {l["sparsity"]:.3f} | '
                 f'{"yes" if l["stored_sparse"] else "no"} |')
  with open(path_md, 'w') as f:
    f.write('\n'.join(lines) + '\n')


def cpu_name() -> str:
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return 'unknown'


def main(argv):
  del argv
  os.makedirs(_OUT.value, exist_ok=True)
  path = os.path.join(_OUT.value, 'tflite_fmnist_resnet.json')
  if _REPORT_ONLY.value:
    with open(path) as f:
      payload = json.load(f)
  else:
    payload = {'machine': dict(experiment.versions(), cpu=cpu_name()),
               'latency_runs': _RUNS.value,
               'resnet': measure_resnet([float(t) for t in _TARGETS.value],
                                        _RUNS.value),
               'mobilenet': measure_mobilenet()}
    io_utils.write_json_atomic(path, payload)
  write_report(payload, path[:-5] + '.md')
  plot_sizes(payload, path[:-5] + '.png')
  print(f'wrote {path[:-5]}.md')


if __name__ == '__main__':
  app.run(main)
