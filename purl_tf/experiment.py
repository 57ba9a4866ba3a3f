"""The stages every run shares: set up, train dense, and finish a pruned net.

`purl-prune` and `purl-search` are both `prepare()` -> choose a per-layer
allocation -> `finish()`. Keeping the dense training, the final fine-tune,
strip and export in one place means every allocation method is judged through
the same code path and the same fine-tune budget.
"""

import contextlib
import copy
import dataclasses
import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from typing import Callable, Dict, Optional

from purl_tf import batchnorm, data, export, io_utils, models, pruning, train
from purl_tf import tflite_export, workdir_lock
from purl_tf.compat import keras, tf, tfmot


class WorkdirError(ValueError):
  """The workdir holds another run."""


@dataclasses.dataclass
class Context:
  """What the stages after `prepare()` need."""
  config: object
  workdir: str
  strategy: tf.distribute.Strategy
  splits: data.Splits
  dense: keras.Model            # trained, compiled, built in strategy scope
  dense_test_accuracy: float
  dense_train_s: float
  lr_scale: float = 1.0         # learning-rate factor for the global batch
  dense_gzip_bytes: Optional[int] = None  # filled by the first finish()
  # The dense net's TFLite file size by format, filled by write_tflite().
  dense_tflite_bytes: Dict[str, int] = dataclasses.field(default_factory=dict)
  # `train.fine_tune`'s CPU seconds of the dense training, when trained now.
  dense_train_cpu_s: Optional[float] = None


def versions() -> Dict[str, str]:
  import tf_agents  # pylint: disable=g-import-not-at-top
  return {'python': platform.python_version(), 'tensorflow': tf.__version__,
          'tf_keras': keras.__version__, 'tfmot': tfmot.__version__,
          'tf_agents': tf_agents.__version__, 'machine': platform.machine(),
          'processor': platform.processor() or platform.machine(),
          'cpus': os.cpu_count()}


def config_json(config) -> dict:
  return json.loads(config.to_json_best_effort()) if hasattr(
      config, 'to_json_best_effort') else dict(config)


DENSE_WEIGHTS = 'dense.weights.h5'
# The stripped, fine-tuned net as a Keras file, beside export/.
KERAS_MODEL = 'pruned.keras'
TFLITE_FILES = {'float32': 'pruned.tflite', 'int8': 'pruned_int8.tflite'}


def _workdir_record(config, kind):
  return {'kind': kind, 'config': config_json(config)}


def check_workdir(workdir: str, config, *, kind: str, overwrite: bool = False,
                  resume: bool = False):
  """Refuses a workdir that holds a different run; writes nothing.

  Args:
    workdir: output directory.
    config: this run's config.
    kind: 'prune' or 'search'.
    overwrite: the run there will be replaced (by `init_workdir`).
    resume: continue the run the workdir holds (its config must match).

  Raises:
    WorkdirError: the workdir holds a run and neither flag allows it, or
      --resume finds another config or nothing to resume.
  """
  path = os.path.join(workdir, 'config.json')
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise WorkdirError(f'workdir {workdir} is a file; pick a directory')
  # The directory, or the nearest one above it that exists, must take files.
  existing = os.path.abspath(workdir)
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.access(existing, os.W_OK | os.X_OK):
    raise WorkdirError(f'cannot write workdir {workdir}: {existing} is not '
                       'writable by this user; pick another --workdir')
  if overwrite:
    return
  if not os.path.exists(path):
    if resume:
      raise WorkdirError(f'--resume: workdir {workdir} holds no run to '
                         'resume; drop --resume to start one there')
    left = [n for n in (os.listdir(workdir) if os.path.isdir(workdir) else [])
            if n not in (workdir_lock.PID_FILE, DENSE_WEIGHTS)]
    if left:
      raise WorkdirError(f'workdir {workdir} is not empty and holds no purl_tf '
                         'run; pick another or pass --overwrite')
    return
  if not resume:
    raise WorkdirError(f'workdir {workdir} already holds a run; pass --resume '
                       'to continue it or --overwrite to replace it')
  try:
    with open(path) as f:
      old = json.load(f)
  except json.JSONDecodeError:
    old = None
  if old != _workdir_record(config, kind):
    raise WorkdirError(f'workdir {workdir} holds a run with another config; '
                       '--resume needs the same config (or pass --overwrite '
                       'to replace it)')


def init_workdir(ctx: 'Context', *, kind: str, overwrite: bool = False,
                 lock: Optional[workdir_lock.WorkdirLock] = None):
  """Creates the workdir once every input has been read and checked.

  Takes `lock` (creating the directory) before anything else, then clears
  the workdir with `overwrite` (only now, so that a bad input never costs
  the user the run that was there), then writes `config.json` and the
  trained dense weights (a resumed search starts from exactly these).

  Raises:
    workdir_lock.WorkdirBusyError: another process holds the workdir.
  """
  workdir = ctx.workdir
  if lock is not None:
    lock.acquire(create=True)
  if overwrite and os.path.isdir(workdir):
    for name in os.listdir(workdir):
      target = os.path.join(workdir, name)
      if os.path.isdir(target):
        shutil.rmtree(target)
      else:
        os.remove(target)
  os.makedirs(workdir, exist_ok=True)
  if lock is not None:
    lock.record_pid()
  path = os.path.join(workdir, DENSE_WEIGHTS)
  if not os.path.exists(path):
    io_utils.save_weights_atomic(ctx.dense, path)
  # Last: config.json is what marks the workdir as holding a run, so a start
  # that fails before it (a full disk) leaves nothing that blocks the next.
  io_utils.write_json_atomic(os.path.join(workdir, 'config.json'),
                             _workdir_record(ctx.config, kind))


def is_chief(config) -> bool:
  """Whether this process writes outputs: always, but on the non-chief
  workers of `strategy.name=multi_worker` (read from TF_CONFIG, so it is
  known before TensorFlow's runtime starts)."""
  if config.strategy.get('name') != 'multi_worker':
    return True
  tf_config = json.loads(os.environ.get('TF_CONFIG', '{}') or '{}')
  task = tf_config.get('task', {})
  cluster = tf_config.get('cluster', {})
  if not task:
    return True
  if task.get('type') == 'chief':
    return True
  return (task.get('type') == 'worker' and int(task.get('index', 0)) == 0 and
          'chief' not in cluster)


@contextlib.contextmanager
def output_dir(config, workdir: str):
  """Yields where this process writes: `workdir` on the chief, a private
  temporary directory (removed afterwards) on other workers, which must still
  run every step (saving included) to take part in the collectives."""
  if is_chief(config):
    yield workdir
    return
  tmp = tempfile.mkdtemp(prefix='purl-worker-')
  try:
    yield tmp
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


def weights_digest(model: keras.Model) -> str:
  """sha256 of a model's weights: workers that agree print the same one."""
  digest = hashlib.sha256()
  for w in model.get_weights():
    digest.update(w.tobytes())
  return digest.hexdigest()[:16]


def _dense_cache_path(config) -> Optional[str]:
  if not config.train.get('cache_dir'):
    return None
  # A net cached before a speed-only key existed is the net training
  # would give.
  data_key = {k: v for k, v in config_json(config.data).items()
              if k not in data.SPEED_ONLY_KEYS}
  key = json.dumps({'model': config_json(config.model),
                    'data': data_key,
                    'train': {k: v for k, v in config_json(config.train).items()
                              if k != 'cache_dir'},
                    'seed': config.seed}, sort_keys=True)
  digest = hashlib.sha256(key.encode()).hexdigest()[:16]
  return os.path.join(config.train.cache_dir, f'dense-{config.model.name}-{digest}.h5')


def prepare(config, workdir: str, verbose: int = 2,
            check_model: Optional[Callable[[keras.Model], None]] = None,
            resume: bool = False) -> Context:
  """Seeds, picks the strategy, builds the data and the trained dense model.

  Args:
    config: a purl_tf config.
    workdir: the run's output directory.
    verbose: Keras progress output of the dense training.
    check_model: called with the built model before any training, so that
      a bad policy or model fails at once.
    resume: load the dense weights the workdir's first run trained.

  Writes nothing: `init_workdir` does, once this has succeeded.
  """
  if bool(config.get('deterministic', True)):
    # Same seed, same results on CPU; some GPU kernels then refuse to run
    # (set --config.deterministic=False there).
    tf.config.experimental.enable_op_determinism()
  keras.utils.set_random_seed(int(config.seed))
  strategy = train.get_strategy(config.strategy)
  data_config = config.data
  lr_scale = 1.0
  if config.strategy.get('scale_batch_with_replicas'):
    # data.batch_size is then per replica; learning rates scale linearly with
    # the global batch (Goyal et al., 2017).
    replicas = strategy.num_replicas_in_sync
    data_config = copy.deepcopy(config.data)
    data_config.batch_size = int(config.data.batch_size) * replicas
    lr_scale = float(replicas)
  splits = data.get_splits(data_config, seed=int(config.seed))
  with strategy.scope():
    dense = models.build(config.model, splits.input_shape, splits.num_classes)
    pruning.prunable_layers(dense)  # Fails early on unprunable models.
    models.check_input_shape(dense, splits.input_shape, splits.num_classes)
    if check_model is not None:
      check_model(dense)
  formats = tflite_export.parse_formats(config.export.tflite)
  if formats:
    # A layer TFLite cannot convert fails now, not after the training.
    tflite_export.convert(dense, formats[0])
  cache = _dense_cache_path(config)
  saved = os.path.join(workdir, DENSE_WEIGHTS) if workdir else ''
  dense_s, dense_cpu = 0.0, None
  # Saved weights are loaded before the model is compiled: the file also
  # holds the dense training's optimizer state, which nothing after this
  # uses, and a compiled model would try (and loudly fail) to restore it
  # into its fresh optimizer.
  loaded = ''
  if resume and os.path.exists(saved):
    loaded = saved
  elif cache and os.path.exists(cache):
    loaded = cache
  if loaded:
    print(f'dense weights from {"cache " if loaded == cache else ""}{loaded}',
          flush=True)
    dense.load_weights(loaded)
  with strategy.scope():
    train.compile_model(dense, config.train.learning_rate * lr_scale,
                        config.train.optimizer)
  if not loaded and int(config.train.epochs) > 0:
    result = train.train_dense(dense, splits.train, int(config.train.epochs),
                               verbose=verbose)
    # The moving averages trail the weights; every method starts from the
    # same re-estimated statistics (saved with the weights below).
    batchnorm.recalibrate(dense, splits.train, int(config.train.bn_batches),
                          strategy)
    dense_s, dense_cpu = result['wall_s'], result['cpu_s']
    if cache:
      io_utils.save_weights_atomic(dense, cache)
  acc = train.evaluate(dense, splits.test)
  print(f'dense test accuracy {acc:.4f}', flush=True)
  return Context(config, workdir, strategy, splits, dense, acc, dense_s,
                 lr_scale, dense_train_cpu_s=dense_cpu)


@dataclasses.dataclass
class FineTuned:
  """A pruned net after the final fine-tune: stripped, its BatchNormalization
  statistics re-estimated, compiled in the context's strategy scope."""
  model: keras.Model
  sparsity_map: Dict[str, float]
  wall_s: float
  cpu_s: Optional[float] = None  # of the fine-tune (`train.fine_tune`)


def final_finetune(ctx: Context, sparsity_map: Dict[str, float], *,
                   method: str, target: float, verbose: int = 2,
                   backup_dir: Optional[str] = None) -> FineTuned:
  """The final fine-tune every allocation gets, up to the stripped net.

  Deterministic for a given context and allocation (on CPU, with
  `deterministic`): it reseeds and reads a fresh training pipeline, so
  fine-tuning an allocation twice gives the same weights, whatever ran in
  between (the search's finalists rely on it).

  Args:
    ctx: from `prepare()`.
    sparsity_map: `{layer_name: sparsity}` to reach.
    method: the allocation's name (progress output).
    target: the global target (progress output).
    verbose: Keras progress output.
    backup_dir: when set, Keras `BackupAndRestore` keeps the fine-tune's
      progress there, so a restarted (multi-worker) run resumes it.

  Returns:
    The fine-tuned, stripped net.

  Raises:
    train.NonFiniteLossError: the fine-tune diverged.
  """
  cfg = ctx.config
  ft = cfg.finetune
  # The search reseeds TensorFlow at every episode, and the training shuffle
  # (and any dropout) takes its seeds from the global seed: reseed, so that
  # every allocation finished from this context, searched for or not, gets
  # the same batches, and a resumed run finishes as an uninterrupted one.
  keras.utils.set_random_seed(int(cfg.seed))
  steps_per_epoch = max(1, ctx.splits.num_train // ctx.splits.batch_size)
  schedule = pruning.ramp_schedule(int(ft.epochs), steps_per_epoch,
                                   float(ft.ramp_fraction), int(ft.frequency))
  with ctx.strategy.scope():
    pruned = pruning.apply_sparsity_map(ctx.dense, sparsity_map, schedule)
    train.compile_model(pruned, ft.learning_rate * ctx.lr_scale, ft.optimizer)
  print(f'final fine-tune ({method}) for {int(ft.epochs)} epoch(s), target '
        f'{target:.3f}', flush=True)
  log_dir = os.path.join(ctx.workdir, 'tensorboard', 'finetune')
  callbacks = ([keras.callbacks.BackupAndRestore(backup_dir)]
               if backup_dir else None)
  # A fresh pipeline: the same batches for every allocation finished from
  # this context, whatever read the training data before.
  train_ds = (ctx.splits.fresh_train() if ctx.splits.fresh_train
              else ctx.splits.train)
  result = train.fine_tune(pruned, train_ds, epochs=int(ft.epochs),
                           log_dir=log_dir, verbose=verbose, callbacks=callbacks)
  with ctx.strategy.scope():
    # Variables a strategy's model evaluates with must be made in its scope.
    stripped = pruning.strip(pruned)
    train.compile_model(stripped, ft.learning_rate * ctx.lr_scale, ft.optimizer)
  # Sparsity ramped up during the fine-tune, faster than BatchNormalization's
  # moving averages follow: re-estimate them for the net that is exported.
  batchnorm.recalibrate(stripped, train_ds, int(cfg.train.bn_batches),
                        ctx.strategy)
  return FineTuned(stripped, dict(sparsity_map), result['wall_s'],
                   result['cpu_s'])


def write_tflite(ctx: Context, model: keras.Model) -> Dict[str, dict]:
  """Writes the TFLite files `export.tflite` asks for, each checked
  against `model` on the test split, with the dense net's file size
  converted the same way.

  Returns:
    `{format: {'path', 'bytes', 'dense_bytes', 'ratio', 'agreement',
    'accuracy', 'keras_accuracy', 'examples'}}` (empty for 'none').
  """
  out = {}
  for fmt in tflite_export.parse_formats(ctx.config.export.tflite):
    print(f'converting to TFLite ({fmt}, zeros stored sparse) and checking it '
          'on the test split', flush=True)
    data = tflite_export.convert(model, fmt)
    if fmt not in ctx.dense_tflite_bytes:
      ctx.dense_tflite_bytes[fmt] = len(tflite_export.convert(ctx.dense, fmt))
    path = os.path.join(ctx.workdir, TFLITE_FILES[fmt])
    io_utils.write_bytes_atomic(path, data)
    row = {'path': os.path.abspath(path), 'bytes': len(data),
           'dense_bytes': ctx.dense_tflite_bytes[fmt],
           'ratio': len(data) / ctx.dense_tflite_bytes[fmt]}
    row.update(tflite_export.check(data, model, ctx.splits.test))
    print(f'{TFLITE_FILES[fmt]}: {len(data):,} bytes (dense '
          f'{row["dense_bytes"]:,}), top-1 agrees with Keras on '
          f'{row["agreement"]:.2%}, test accuracy {row["accuracy"]:.4f}',
          flush=True)
    out[fmt] = row
  return out


def finish(ctx: Context, sparsity_map: Dict[str, float], *, target: float,
           method: str, verbose: int = 2, extra: Optional[dict] = None,
           started: Optional[float] = None,
           backup_dir: Optional[str] = None,
           finetuned: Optional[FineTuned] = None) -> dict:
  """Final fine-tune of `sparsity_map`, test evaluation, strip and export.

  Writes `summary.json` and `export/` in the workdir.

  Args:
    ctx: from `prepare()`.
    sparsity_map: `{layer_name: sparsity}` to reach.
    target: the global target it was chosen for (reported).
    method: the allocation's name (reported).
    verbose: Keras progress output.
    extra: more fields for the summary.
    started: `time.perf_counter()` at the run's start, for the total wall time.
    backup_dir: when set, Keras `BackupAndRestore` keeps the fine-tune's
      progress there, so a restarted (multi-worker) run resumes it.
    finetuned: `final_finetune(ctx, sparsity_map)`'s result when the caller
      has already run it (the search's finalists); not run again.

  Returns:
    The summary dict.

  Raises:
    train.NonFiniteLossError: the final fine-tune diverged.
    ValueError: `finetuned` holds another allocation.
  """
  cfg = ctx.config
  if finetuned is None:
    finetuned = final_finetune(ctx, sparsity_map, method=method,
                               target=target, verbose=verbose,
                               backup_dir=backup_dir)
  elif finetuned.sparsity_map != dict(sparsity_map):
    raise ValueError('finish(): the fine-tuned net was pruned to another '
                     'allocation than sparsity_map')
  stripped = finetuned.model
  result = {'wall_s': finetuned.wall_s, 'cpu_s': finetuned.cpu_s}
  # Test evaluation, export and size measurement each take minutes at
  # ImageNet size: say what is running.
  print('evaluating on the test split', flush=True)
  test_acc = train.evaluate(stripped, ctx.splits.test)
  report = pruning.sparsity_report(stripped)
  budget = str(cfg.prune.budget)
  infos = pruning.prunable_layers(stripped)
  reached = pruning.budget_sparsity(infos, report['layers'], budget)
  name = cfg.export.model_name or ctx.dense.name
  t0 = time.perf_counter()
  print('exporting the stripped model for TF Serving', flush=True)
  path = export.export_for_serving(stripped, os.path.join(ctx.workdir, 'export'),
                                   name, version=int(cfg.export.version) or None)
  print('measuring gzipped SavedModel sizes (pruned and dense)', flush=True)
  if ctx.dense_gzip_bytes is None:
    # The dense net is the same for every allocation finished from this
    # context (the benchmark finishes 16): export it once.
    ctx.dense_gzip_bytes = export.gzip_size_of_model(ctx.dense)
  dense_gz = ctx.dense_gzip_bytes
  pruned_gz = export.gzip_size(path)
  keras_path = os.path.join(ctx.workdir, KERAS_MODEL)
  export.save_keras_model(stripped, keras_path)
  print(f'exported and measured in {time.perf_counter() - t0:.1f}s',
        flush=True)
  tflite = write_tflite(ctx, stripped)
  summary = {
      'method': method,
      'model': ctx.dense.name,
      'dense_test_accuracy': ctx.dense_test_accuracy,
      'pruned_test_accuracy': test_acc,
      'target_sparsity': float(target),
      'reached_global_sparsity': report['global'],
      # What the target counts (prune.budget) and how much of it is gone;
      # the FLOPs share always, for a comparison across budgets.
      'budget': budget,
      'reached_budget_sparsity': reached,
      'reached_flops_sparsity': pruning.budget_sparsity(infos, report['layers'],
                                                        'flops'),
      'target_met': reached >= float(target) - pruning.TARGET_TOLERANCE,
      'per_layer_sparsity': report['layers'],
      'allocation': dict(sparsity_map),
      'export_path': os.path.abspath(path),
      'keras_model': os.path.abspath(keras_path),
      'tflite': tflite,
      'serving_signature': {'name': 'serving_default',
                            'input': export.INPUT_NAME,
                            'output': export.OUTPUT_NAME},
      'weights_sha256': weights_digest(stripped),
      'gzip_bytes': {'dense': dense_gz, 'pruned': pruned_gz,
                     'ratio': pruned_gz / dense_gz},
      'wall_s': {'dense_train': ctx.dense_train_s, 'finetune': result['wall_s'],
                 'total': time.perf_counter() - started if started else None},
      # The process's CPU seconds (all threads): steadier than wall time
      # where the cores a process gets vary.
      'cpu_s': {'dense_train': ctx.dense_train_cpu_s,
                'finetune': result['cpu_s']},
      'seed': int(cfg.seed),
      'versions': versions(),
  }
  summary.update(extra or {})
  for fmt, row in tflite.items():
    if fmt == 'float32' and row['agreement'] < tflite_export.MIN_AGREEMENT:
      print(f'WARNING: {row["path"]} agrees with the Keras model on '
            f'{row["agreement"]:.2%} of the test images only (a conversion '
            'fault: use export/ or pruned.keras)', flush=True)
  if not summary['target_met']:
    kind = 'global' if budget == 'params' else 'FLOPs'
    print(f'WARNING: the pruned net reached {kind} sparsity '
          f'{reached:.4f}, below the target {float(target):.4f} '
          '(summary.json: "target_met": false)', flush=True)
  io_utils.write_json_atomic(os.path.join(ctx.workdir, 'summary.json'), summary)
  return summary
