r"""Does PuRL beat the allocations a user would otherwise pick, and at what cost?

On Fashion-MNIST (Debian's package), for each net, seed and global target,
every method prunes the *same* dense net (trained with that seed) through
the same code path and the same final fine-tune (epochs, optimiser, ramp,
seed): uniform, global_magnitude, lamp, erk, sensitivity, purl (the search at
its default config) and purl_paper (the paper-faithful setting, an ablation).
Methods are compared paired by seed (`purl_tf.compare`).

The run is a set of cells (net, seed, target, method). Each finished cell is
written to the results file at once; a rerun skips the cells it holds (for
the same config), so the full run can be done in pieces:

  python benchmarks/fmnist.py --quick                 # a smoke run, minutes
  python benchmarks/fmnist.py --nets=fmnist_cnn --seeds=0,1,2
  python benchmarks/fmnist.py --nets=fmnist_resnet --seeds=0 --targets=0.98 \
      --budget_minutes=150                            # stops between cells
  python benchmarks/fmnist.py --report_only           # Markdown + PNG again

Writes benchmarks/results/fmnist{,_quick}.json, .md and PNG plots. Dense
nets are cached in --dense_cache (benchmarks/dense_cache/, committed), so a
piece that resumes a seed, on this machine or another, prunes the same dense
net as the cells already measured, and does not retrain it (its training
time is the one recorded when it was trained). A seed whose recorded dense
net is lost is refused rather than mixed (`check_same_dense`).
"""

import ast
import hashlib
import json
import os
import platform
import re
import resource
import sys
import time

from absl import app
from absl import flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import purl_tf  # pylint: disable=g-import-not-at-top,unused-import
from purl_tf import allocation, cli_errors, compare, config_defaults, curves
from purl_tf import data, experiment, io_utils, models, pipeline, pruning
from purl_tf import report, search_loop, search_run
from purl_tf.compat import keras
import psutil  # pylint: disable=g-import-not-at-top

ALL_METHODS = ('uniform', 'global_magnitude', 'lamp', 'erk', 'sensitivity',
               'purl', 'purl_paper')
_QUICK = flags.DEFINE_bool('quick', False, 'Smoke-sized run: fmnist_cnn at '
                           '0.9, :smoke budgets, written to fmnist_quick.*.')
_NETS = flags.DEFINE_list('nets', ['fmnist_cnn', 'fmnist_resnet'], 'Nets.')
_SEEDS = flags.DEFINE_list('seeds', ['0', '1', '2'], 'Seeds: each trains its '
                           'own dense net and seeds every method on it.')
_TARGETS = flags.DEFINE_list('targets', ['0.9', '0.95', '0.98'],
                             'Global target sparsities.')
_METHODS = flags.DEFINE_list('methods', list(ALL_METHODS), 'Methods.')
_OUT = flags.DEFINE_string('out', os.path.join(REPO, 'benchmarks', 'results'),
                           'Results directory.')
_WORKDIR = flags.DEFINE_string('workdir', '/tmp/purl_bench',
                               'Run outputs (each cell\'s workdir).')
_DENSE_CACHE = flags.DEFINE_string(
    'dense_cache', os.path.join(REPO, 'benchmarks', 'dense_cache'),
    'Dense weights, one file per (net, seed, training settings). Kept in the '
    'repository so that a piece run on another machine prunes the same dense '
    'nets as the cells already measured (a retrained net differs). --quick: '
    'in --workdir unless given.')
_TAG = flags.DEFINE_string('tag', '', 'Names the outputs fmnist_TAG.* (for '
                           'ablations run with --override).')
_VARIANTS = flags.DEFINE_multi_string(
    'variant', [], 'An extra PuRL method NAME:key=value[,key=value...] (run '
    'as method purl_NAME), for ablations beside the default search, e.g. '
    'long:search.episodes=40. A value may hold commas (a list): the items '
    'split only where a comma begins another key=.')
_VARIANT_TARGETS = flags.DEFINE_list(
    'variant_targets', [], 'Targets the --variant methods run at (default: '
    'every target).')
_OVERRIDES = flags.DEFINE_multi_string(
    'override', [], 'config overrides as key=value (e.g. finetune.epochs=2).')
_BUDGET = flags.DEFINE_float('budget_minutes', 0.0, 'Start no new cell after '
                             'this many minutes (0: no limit).', lower_bound=0)
_REPORT_ONLY = flags.DEFINE_bool('report_only', False, 'Only rewrite the '
                                 'Markdown and plots from the JSON.')


def rss_mb() -> float:
  return psutil.Process().memory_info().rss / 2**20


def peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def apply_overrides(config, items):
  for item in items:
    key, value = item.split('=', 1)
    node = config
    *path, leaf = key.split('.')
    for part in path:
      node = node[part]
    old = node[leaf]
    if isinstance(old, bool):
      node[leaf] = value.lower() in ('1', 'true')
    elif isinstance(old, tuple):  # '(-0.5,0.5,0.125)'
      node[leaf] = tuple(ast.literal_eval(value))
    else:
      node[leaf] = type(old)(value)
  return config


def net_config(net: str, quick: bool, seed: int):
  config = config_defaults.load(os.path.join(REPO, 'configs', f'{net}.py') +
                                (':smoke' if quick else ''))
  apply_overrides(config, _OVERRIDES.value)
  config.seed = int(seed)
  return config


# Config sections only a search reads. A free allocation's cell does not
# depend on them, so a change to a search setting re-measures the purl cells
# alone; the sensitivity scan reads two search keys, kept in its digest.
SEARCH_SECTIONS = ('search', 'select', 'env', 'reward', 'agent')
SENSITIVITY_KEYS = ('eval_batches', 'bn_batches')


# Config keys added after cells were measured, with the value that keeps
# the code path those cells ran: at that value a key stays out of the
# digest, so adding an option does not orphan the cells it cannot change.
ADDED_KEYS = {('export', 'tflite'): 'none', ('prune', 'budget'): 'params'}
# Keys the config no longer has, with the value every cell was measured
# with (now a constant of the package): put back before hashing, so the
# cells keep their digests.
REMOVED_KEYS = {('search', 'nan_penalty'): -2.0,
                ('reward', 'allowed_drop'): 0.01}


def config_digest(config, method: str = 'purl') -> str:
  """Identifies the settings a cell of `method` was measured with (seed
  excluded: it is part of the cell's key). Any non-purl method name (e.g.
  'dense') gives the digest of the settings every free allocation reads."""
  obj = experiment.config_json(config)
  obj.pop('seed', None)
  obj['train'].pop('cache_dir', None)
  # Speed only: the same batches either way, so the cells measured with
  # autotuning on pair with those measured without.
  for key in data.SPEED_ONLY_KEYS:
    obj['data'].pop(key, None)
  for (section, key), value in REMOVED_KEYS.items():
    obj.setdefault(section, {}).setdefault(key, value)
  for (section, key), old in ADDED_KEYS.items():
    if obj.get(section, {}).get(key, old) == old:
      obj.get(section, {}).pop(key, None)
  if not method.startswith('purl'):
    kept = ({k: obj['search'][k] for k in SENSITIVITY_KEYS}
            if method == 'sensitivity' else None)
    for section in SEARCH_SECTIONS:
      obj.pop(section, None)
    if kept:
      obj['search'] = kept
  text = json.dumps(obj, sort_keys=True)
  return hashlib.sha256(text.encode()).hexdigest()[:12]


def cell_digest(config, method: str) -> str:
  """The digest of the settings a cell of `method` runs with.

  A search variant's (`--variant`) overrides are part of it, so a variant
  whose settings change is measured again, and one whose settings are the
  default search's has the default's digest. The target is not (it is part
  of the cell's key): the overrides are applied at the config's own.
  """
  if method.startswith('purl'):
    config = method_config(config, method, config.prune.sparsity)
  return config_digest(config, method)


def check_searches(quick: bool):
  """Checks every search config the run will use before any cell runs.

  Raises:
    ValueError: from `search_loop.check_config`, naming the method.
  """
  nets, _, targets = grid(quick)
  for net in nets:
    config = net_config(net, quick, 0)
    for target, method in requested(targets):
      if method.startswith('purl'):
        try:
          search_loop.check_config(method_config(config, method, target))
        except ValueError as e:
          raise ValueError(f'{net} {method} at {target}: {e}') from None


def check_methods(methods):
  """Refuses an unknown --methods entry before anything runs.

  Raises:
    ValueError: a method that is neither in `ALL_METHODS` nor a blend
      ('lamp+erk': `allocation.blend` of two or more distinct free
      allocations).
  """
  for m in methods:
    if m in ALL_METHODS or allocation.is_free(m):
      continue
    raise ValueError(
        f'--methods: unknown method {m!r}; one of {", ".join(ALL_METHODS)}, '
        'or a blend of distinct free allocations joined by "+" (e.g. '
        f'lamp+erk; free: {", ".join(allocation.FREE_METHODS)}). Search '
        'variants are named with --variant.')


def method_config(config, method: str, target: float):
  """The search config of a purl method at `target`."""
  config = config.copy_and_resolve_references()
  config.prune.sparsity = target
  if method == 'purl_paper':
    config_defaults.paper_faithful(config)
    # The paper's grid tops out at 0.95: a higher target needs a higher
    # maximum (20 actions up to halfway between the target and 1).
    if target > config.env.grid[1] - 0.01:
      top = min(0.995, target + (1 - target) / 2)
      config.env.grid = (0.0, top, top / 19)
  elif method != 'purl':
    variants = dict(v.split(':', 1) for v in _VARIANTS.value)
    apply_overrides(config, split_overrides(variants[method[len('purl_'):]]))
  return config


def split_overrides(text: str):
  """A variant's 'key=value,key=value' as items, split only at commas that
  begin another 'key=': a value may be a list itself
  ('search.references=lamp,erk,lamp+erk,select.top_episodes=2')."""
  return [x for x in re.split(r',(?=[A-Za-z_][\w.]*=)', text) if x]


def run_purl(ctx, config):
  samples = {}

  def on_episode(record):
    samples[record['episode'] + 1] = rss_mb()
  # As purl-search does: the search's cached batches come from a pipeline
  # shuffled once, so they do not depend on which methods ran before. With
  # select.finalists the chosen net is already fine-tuned (counted in the
  # search's time, not again in the final fine-tune's).
  result = pipeline.search_in(ctx, config, on_episode=on_episode)
  state, records, finetuned = result.state, result.loop.records, result.finetuned
  ft = sum(r['finetune_s'] for r in records)
  ev = sum(r['eval_s'] for r in records)
  wall = sum(r['wall_s'] for r in records)
  extra = {
      'search_s': state.search_s, 'episodes': state.episode,
      'best_episode': state.best['episode'] + 1,
      'best_reference': state.best.get('reference', ''),
      'chosen': search_run.describe(state),
      'demonstrations': dict(state.demos),
      'episode_global_sparsity': state.best['global_sparsity'],
      # None with search.episodes=0 (no episode: the references are the
      # finalists).
      'step_profile': {'finetune_share': ft / wall, 'eval_share': ev / wall,
                       'other_share': (wall - ft - ev) / wall,
                       'episode_s': wall / len(records)} if records else None,
      'rss_mb_after_episode_5': samples.get(5),
      'rss_mb_after_last_episode': samples.get(state.episode),
      'curve': {'return': [r['return'] for r in records],
                'final_accuracy': [r['final_accuracy'] for r in records],
                'demo': [r.get('demo', False) for r in records]},
  }
  if state.finalists:
    names = {str(c['episode']): (c['reference'] if c['demo'] else
                                 f'episode {c["episode"] + 1}')
             for c in state.candidates}
    extra['finalists'] = {names[k]: v for k, v in state.finalists.items()}
    extra['finalists_s'] = state.finalists_s
    # Per-example correctness on the reward split (selection.pack_correct), so
    # that other choice rules (a paired threshold among the references,
    # say) can be compared offline on the same cells.
    extra['finalists_correct'] = {
        names[k]: v for k, v in state.finalists_correct.items()}
    # The same for the cross-entropy (selection.pack_floats) and its mean.
    extra['finalists_loss'] = {
        names[k]: v for k, v in state.finalists_loss.items()}
    extra['finalists_loss_examples'] = {
        names[k]: v for k, v in state.finalists_loss_examples.items()}
  return result.policy.sparsity, extra, finetuned


def check_same_dense(key: str, recorded: dict, weights_sha256: str,
                     test_accuracy: float):
  """Refuses to add cells to a seed whose cells pruned another dense net.

  Every cell of a seed is paired with the others through its dense net. A
  net retrained on another machine (other CPU kernels) or after its cached
  weights were lost is a different net: its cells would not pair with the
  recorded ones.

  Raises:
    ValueError: the weights (or, for a record without their digest, the test
      accuracy beyond 3 images in 10,000) differ from those recorded for
      `key`.
  """
  if not recorded.get('test_accuracy'):
    return
  if recorded.get('weights_sha256'):
    same = recorded['weights_sha256'] == weights_sha256
  else:
    # Records from before the digest: the same weights evaluated on another
    # CPU may differ by an image or two; a retrained net by far more.
    same = abs(recorded['test_accuracy'] - test_accuracy) < 3e-4
  if not same:
    raise ValueError(
        f'{key}: the cells of this seed pruned a dense net with test accuracy '
        f'{recorded["test_accuracy"]:.4f}, and the dense net of this run '
        f'(test accuracy {test_accuracy:.4f}) is another one: its cells would '
        'not pair with them. Put the recorded net\'s weights in --dense_cache, '
        'or remove this seed\'s cells and its "dense" entry from the results '
        'file to measure the seed again from scratch.')


class Cells:
  """The results file: every measured cell, written after each one."""

  def __init__(self, path: str):
    self.path = path
    self.payload = {'schema': 2, 'cells': [], 'dense': {}}
    if os.path.exists(path):
      with open(path) as f:
        old = json.load(f)
      if old.get('schema') == 2:
        self.payload = old

  @property
  def rows(self):
    return self.payload['cells']

  def find(self, net, seed, target, method, digest):
    for r in self.rows:
      if (r['net'], r['seed'], r['method'], r['config_digest']) == (
          net, seed, method, digest) and abs(r['target'] - target) < 1e-9:
        return r
    return None

  def add(self, row):
    old = [r for r in self.rows if not (
        (r['net'], r['seed'], r['method']) == (row['net'], row['seed'],
                                               row['method'])
        and abs(r['target'] - row['target']) < 1e-9)]
    self.payload['cells'] = old + [row]

  def save(self, extra):
    self.payload.update(extra)
    io_utils.write_json_atomic(self.path, self.payload)


def default_dense_records() -> dict:
  """The dense records of the untagged results file (empty if none)."""
  path = os.path.join(_OUT.value, 'fmnist.json')
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f).get('dense', {})


def run_cells(cells: Cells, quick: bool, deadline: float, save):
  """Measures every missing cell; returns False when the budget ran out."""
  nets, seeds, targets = grid(quick)
  for net in nets:
    for seed in seeds:
      config = net_config(net, quick, seed)
      todo = [(t, m) for t, m in requested(targets)
              if cells.find(net, seed, t, m, cell_digest(config, m)) is None]
      if not todo:
        continue
      if time.time() > deadline:
        return False
      workdir = os.path.join(_WORKDIR.value, f'{net}_seed{seed}')
      os.makedirs(workdir, exist_ok=True)
      # A smoke run's nets stay out of the repository.
      config.train.cache_dir = (
          os.path.join(_WORKDIR.value, 'dense_cache')
          if quick and not _DENSE_CACHE.present else _DENSE_CACHE.value)
      ctx = experiment.prepare(config, workdir, verbose=2)
      dense_key = f'{net}/{seed}/{config_digest(config, "dense")}'
      dense = cells.payload['dense'].setdefault(dense_key, {})
      weights_sha256 = experiment.weights_digest(ctx.dense)
      check_same_dense(dense_key, dense, weights_sha256,
                       ctx.dense_test_accuracy)
      if ctx.dense_train_s:  # trained now, not read from the cache
        dense.update(train_s=ctx.dense_train_s,
                     train_cpu_s=ctx.dense_train_cpu_s)
      dense.update(net=net, seed=seed, test_accuracy=ctx.dense_test_accuracy,
                   weights_sha256=weights_sha256)
      if not dense.get('train_s'):
        # The cache is keyed by the dense-training settings alone, so a change
        # to search settings (a new digest) reuses the same weights: take the
        # time recorded when they were trained (same net, seed, accuracy),
        # here or in the untagged results (a --tag run prunes the same nets).
        known = list(cells.payload['dense'].values()) + list(
            default_dense_records().values())
        dense['train_s'] = next(
            (d['train_s'] for d in known
             if d.get('train_s') and (d['net'], d['seed'], d['test_accuracy'])
             == (net, seed, ctx.dense_test_accuracy)), None)
      if not dense.get('train_s'):
        # The cost ratio needs it; retraining would give another dense net.
        raise ValueError(
            f'{dense_key}: {cells.path} has no training time for the cached '
            'dense net (the cost denominator): run with the results file that '
            'trained it (--out, --tag), or train it again with an empty '
            '--dense_cache directory')
      scan = None
      for target, method in todo:
        if time.time() > deadline:
          return False
        keras.utils.set_random_seed(seed)
        t0, c0 = time.perf_counter(), time.process_time()
        extra, finetuned = {}, None
        if method.startswith('purl'):
          sparsity_map, extra, finetuned = run_purl(
              ctx, method_config(config, method, target))
        elif method == 'sensitivity':
          if scan is None:
            s0 = time.perf_counter()
            # One scan serves every target of the seed; the grid reaches
            # the highest (allocation.sensitivity does the same for one).
            scan = allocation.sensitivity_scan(
                ctx.dense, ctx.splits.reward,
                grid=allocation.grid_for_target(
                    allocation.SENSITIVITY_GRID, max(t for t, _ in todo)),
                eval_batches=int(config.search.eval_batches),
                calibration_ds=ctx.splits.train,
                bn_batches=int(config.search.bn_batches))
            dense['sensitivity_scan_s'] = time.perf_counter() - s0
          sparsity_map = allocation.pick_by_sensitivity(
              pruning.prunable_layers(ctx.dense), scan, target,
              budget=str(config.prune.budget))
        else:
          sparsity_map = allocation.allocate(
              method, ctx.dense, target, budget=str(config.prune.budget))
        alloc_s = time.perf_counter() - t0
        alloc_cpu = time.process_time() - c0
        ctx.workdir = os.path.join(workdir, f'{method}_{target}')
        os.makedirs(ctx.workdir, exist_ok=True)
        keras.utils.set_random_seed(seed)  # the same fine-tune for every method
        summary = experiment.finish(ctx, sparsity_map, target=target,
                                    method=method, verbose=0,
                                    finetuned=finetuned)
        # A finalist's fine-tune is already in the search's time.
        ft_s = 0.0 if finetuned else summary['wall_s']['finetune']
        ft_cpu = 0.0 if finetuned else summary['cpu_s']['finetune']
        # The same ratio in CPU seconds (all threads), where the dense
        # training's were recorded: the wall time moves with the cores the
        # process got (fine-tunes took ~50 s or ~91 s within one run).
        cpu_ratio = ((alloc_cpu + ft_cpu) / dense['train_cpu_s']
                     if dense.get('train_cpu_s') else None)
        row = {'net': net, 'seed': seed, 'target': target, 'method': method,
               'config_digest': cell_digest(config, method),
               # Which dense record this cell pruned: a search's digest
               # includes its search settings, so no digest names it.
               'dense_key': dense_key,
               'test_accuracy': summary['pruned_test_accuracy'],
               'dense_test_accuracy': ctx.dense_test_accuracy,
               # The share of the budget removed (params: the global
               # sparsity; prune.budget=flops: the FLOPs).
               'sparsity': summary.get('reached_budget_sparsity',
                                       summary['reached_global_sparsity']),
               'per_layer_sparsity': summary['per_layer_sparsity'],
               'gzip_ratio': summary['gzip_bytes']['ratio'],
               'allocation_s': alloc_s, 'finetune_s': ft_s,
               'wall_over_dense_train': (alloc_s + ft_s) / dense['train_s'],
               'allocation_cpu_s': alloc_cpu, 'finetune_cpu_s': ft_cpu,
               'cpu_over_dense_train': cpu_ratio,
               'measured': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
               # Other work on the machine inflates wall times: the 5-minute
               # load average says whether this cell shared its cores.
               'loadavg_5m': round(os.getloadavg()[1], 2),
               **extra}
        print(f'{net} seed {seed} {method} @{target}: test acc '
              f'{row["test_accuracy"]:.4f} sparsity {row["sparsity"]:.4f} '
              f'wall {alloc_s + ft_s:.0f}s '
              f'({row["wall_over_dense_train"]:.2f}x dense'
              + (f', CPU {cpu_ratio:.2f}x' if cpu_ratio else '') + ')',
              flush=True)
        cells.add(row)
        save()
  return True


def episodes_above_demos(row) -> str:
  """'k/n': of a search's n agent episodes, how many ended above its best
  reference episode on the episode's own last accuracy (before the
  selection stage); '-' without references."""
  curve = row.get('curve') or {}
  pairs = list(zip(curve.get('final_accuracy', []), curve.get('demo', [])))
  demos = [a for a, d in pairs if d]
  agent = [a for a, d in pairs if not d]
  if not demos or not agent:
    return '-'
  return f'{sum(a > max(demos) for a in agent)}/{len(agent)}'


def returned(row) -> str:
  """What a search cell's result was: 'lamp reference' (that
  free allocation) or 'episode 7 (lamp)' (an agent episode scaling the
  reference in brackets); '-' when the cell does not say."""
  episode, ref = row.get('best_episode'), row.get('best_reference') or '-'
  if episode is None:
    return '-'
  if row.get('episodes') == 0:  # search.episodes=0: a reference, unplayed
    return f'{ref} (no episode)'
  demo = (row.get('curve') or {}).get('demo', [])
  if 0 < episode <= len(demo) and demo[episode - 1]:
    return f'{ref} reference'
  return f'episode {episode} ({ref})'


def per_seed_tables(net_rows, methods, targets) -> list:
  """Markdown lines: per target, each seed's test accuracy by method (the
  seed's best baseline in bold), what the search returned and its cost."""
  lines = ['### Per seed', '',
           'Test accuracy of each seed\'s cells; the best baseline of the '
           'seed in bold (the oracle above). "purl returned" is the '
           'search\'s result: a reference (that free allocation, as '
           'the episode played it) or an agent episode.', '']
  for target in targets:
    at = [r for r in net_rows if abs(r['target'] - target) < 1e-9]
    seeds = sorted({int(r['seed']) for r in at})
    lines += [f'{target:.2f}:', '',
              '| seed | dense | ' + ' | '.join(methods) +
              ' | purl returned | purl cost (x dense) |',
              '|---' * (len(methods) + 4) + '|']
    for seed in seeds:
      mine = {r['method']: r for r in at if int(r['seed']) == seed}
      base = {m: mine[m]['test_accuracy'] for m in compare.BASELINES
              if m in mine}
      best = compare.best_of(base) if base else None
      dense = next(iter(mine.values()))['dense_test_accuracy']
      cells = []
      for m in methods:
        text = f'{mine[m]["test_accuracy"]:.4f}' if m in mine else '-'
        cells.append(f'**{text}**' if m == best else text)
      purl = mine.get('purl')
      tail = ([returned(purl), f'{purl["wall_over_dense_train"]:.2f}']
              if purl else ['-', '-'])
      lines.append(f'| {seed} | {dense:.4f} | ' + ' | '.join(cells + tail) +
                   ' |')
    lines.append('')
  return lines


def finalist_tables(net_rows, targets) -> list:
  """Markdown lines for the searches that ran with `select.finalists`: per
  cell, each finalist's reward-split accuracy after the final fine-tune, the
  one chosen, and its test accuracy (the test accuracies of the others are
  their free allocations' cells when they are references)."""
  rows = [r for r in net_rows if r.get('finalists')]
  if not rows:
    return []
  lines = ['### Finalists', '',
           'Searches with `select.finalists`: each finalist got the final '
           'fine-tune and was scored on the whole reward split (training '
           'images held out of every fine-tune); the chosen one (bold) is '
           'the result, exported as it is. Scores: reward-split accuracy, '
           'and its cross-entropy after a slash where the cell kept it.', '',
           '| target | method | seed | finalists: reward-split scores | '
           'chosen: test |', '|---|---|---|---|---|']
  for target in targets:
    for r in sorted((r for r in rows if abs(r['target'] - target) < 1e-9),
                    key=lambda r: (r['method'], int(r['seed']))):
      chosen = returned(r)
      name = chosen[:-len(' reference')] if chosen.endswith(' reference') else (
          chosen.split(' (')[0])
      # With the cross-entropy (cells from before it have accuracy only).
      loss = r.get('finalists_loss') or {}
      scores = ', '.join(
          (f'**{n} {v:.4f}{_loss(loss, n)}**' if n == name else
           f'{n} {v:.4f}{_loss(loss, n)}')
          for n, v in r['finalists'].items())
      lines.append(f'| {target:.2f} | {r["method"]} | {r["seed"]} | {scores} '
                   f'| {chosen}: {r["test_accuracy"]:.4f} |')
  return lines + ['']


def _loss(losses, name) -> str:
  return f' / {losses[name]:.4f}' if name in losses else ''


def write_markdown(path, payload, prefix):
  rows = payload['cells']
  lines = ['# Fashion-MNIST: PuRL against the allocations a user would pick', '',
           f'Machine: {payload["machine"]["processor"]}, '
           f'{payload["machine"]["cpus"]} CPUs; TensorFlow '
           f'{payload["machine"]["tensorflow"]}. Each seed trains its own dense '
           'net; every method prunes it with the same final fine-tune (paired '
           'by seed). Accuracy is test accuracy, mean ± std (seeds). The '
           'difference is PuRL minus the best baseline *on the same seeds*, '
           'in points, ± its standard error; a **win** or **loss** only when '
           'it exceeds twice its standard error, otherwise a **tie**. Cost = '
           '(allocation or search + final fine-tune) / the dense training, '
           'wall times on the same machine (the dense time as recorded when '
           'that net was trained); "CPU" gives the same ratio in the '
           'process\'s CPU seconds (all threads), mean and cell count, where '
           'both were recorded: it moves less than wall time with the cores '
           'the process got; load = the 5-minute load average when each '
           'cell ended, per seed: above the core count, other work shared '
           'the cores and inflated that cell\'s wall time.', '']
  if payload.get('overrides'):
    lines += ['Config overrides: ' + ', '.join(f'`{o}`' for o in
                                              payload['overrides']) + '.', '']
  nets = sorted({r['net'] for r in rows}, key=lambda n: (n != 'fmnist_cnn', n))
  for net in nets:
    net_rows = [r for r in rows if r['net'] == net]
    dense = dense_of(payload, net_rows)
    d_mean, d_std = compare.mean_std([d['test_accuracy'] for d in dense])
    t_mean, _ = compare.mean_std([d['train_s'] for d in dense])
    lines += [f'## {net}', '',
              f'Dense: test accuracy {compare.format_pm(d_mean, d_std, len(dense))}'
              f', training {t_mean:.0f} s.', '']
    methods = compare.methods_in(net_rows)
    targets = sorted({r['target'] for r in net_rows})
    lines += ['| target | ' + ' | '.join(methods) + ' |',
              '|---' * (len(methods) + 1) + '|']
    for target in targets:
      cells = []
      best = compare.best_baseline(net_rows, net, target)
      for m in methods:
        s = compare.summarize(net_rows, net, target, m)
        text = compare.format_pm(s['mean'], s['std'], s['n']) if s else '-'
        cells.append(f'**{text}**' if m == best else text)
      lines.append(f'| {target:.2f} | ' + ' | '.join(cells) + ' |')
    lines += ['', 'Best baseline in bold (by mean). The oracle is the best '
              'baseline of each seed (named in brackets), which no user can '
              'know without running them all: it bounds what choosing among '
              'free allocations can reach. The last column counts, per seed, '
              'the agent\'s episodes whose own last reward-split accuracy '
              'beat the best reference episode\'s: what the agent found '
              'beyond the free allocations before the selection stage.', '',
              '| target | method | vs best baseline | vs each seed\'s best '
              'baseline (oracle) | cost (x dense) | load | best episode | '
              'reference | agent episodes above the best reference |',
              '|---|---|---|---|---|---|---|---|---|']
    for target in targets:
      for m in [m for m in methods if m.startswith('purl')]:
        mine = [r for r in net_rows if r['method'] == m and r['target'] == target]
        if not mine:  # a variant run at other targets only, or not yet here
          continue
        p = compare.against_best_baseline(net_rows, net, target, m)
        o = compare.against_oracle(net_rows, net, target, m)
        picks = f' ({", ".join(o["picks"])})' if o else ''
        costs = [r['wall_over_dense_train'] for r in mine]
        cost = compare.mean_std(costs)
        cpus = [r['cpu_over_dense_train'] for r in mine
                if r.get('cpu_over_dense_train')]
        cpu = (f'; CPU {compare.mean_std(cpus)[0]:.2f} ({len(cpus)})'
               if cpus else '')
        load = ', '.join(f'{r["loadavg_5m"]:.1f}' if 'loadavg_5m' in r else '-'
                         for r in mine)
        best_ep = ', '.join(str(r.get('best_episode', '-')) for r in mine)
        refs = ', '.join(r.get('best_reference', '') or '-' for r in mine)
        above = ', '.join(episodes_above_demos(r) for r in mine)
        lines.append(f'| {target:.2f} | {m} | {compare.verdict_text(p)} | '
                     f'{compare.verdict_text(o)}{picks} | '
                     f'{cost[0]:.2f} ± {cost[1]:.2f} (max {max(costs):.2f})'
                     f'{cpu} | '
                     f'{load} | {best_ep} | {refs} | {above} |')
    sizes = ', '.join(
        f'{t:.2f}: {compare.mean_std([r["gzip_ratio"] for r in net_rows if r["target"] == t])[0]:.3f}x'
        for t in targets)
    lines += ['', 'Size of the stripped pruned net against the dense one (each a '
              'SavedModel directory as written for TF Serving, without '
              f'optimizer state, as a gzipped tar), mean over cells: {sizes}.']
    lines += [''] + per_seed_tables(net_rows, methods, targets)
    lines += finalist_tables(net_rows, targets)
    top = max(targets)
    lines += [f'![accuracy vs target]({prefix}{net}_accuracy_vs_target.png)',
              f'![per-layer sparsity at {top}]({prefix}{net}_per_layer_{top}.png)']
    if searched(net_rows):
      lines.append(f'![PuRL search]({prefix}{net}_purl_search.png)')
    for target in sorted({t for t, _ in curve_runs(net_rows)}):
      lines.append(f'![learning curves at {target}]'
                   f'({prefix}{net}_curves_{target}.png)')
    lines.append('')
  missing = payload.get('missing', [])
  if missing:
    lines += [f'**Incomplete**: {len(missing)} cell(s) of the requested run '
              'are not measured yet: ' + ', '.join(missing[:12]) +
              (' ...' if len(missing) > 12 else '') + '.', '']
  lines.append(f'Peak RSS of the last piece: {payload["peak_rss_mb"]:.0f} MB.')
  with open(path, 'w') as f:
    f.write('\n'.join(lines) + '\n')


def searched(net_rows):
  """The purl cell whose search the report plots (the lowest seed, at the
  highest target), or None when it played no episode."""
  seed = min(r['seed'] for r in net_rows)
  top = max(r['target'] for r in net_rows)
  return next((r for r in net_rows
               if (r['method'], r['seed'], r['target']) == ('purl', seed, top)
               and (r.get('curve') or {}).get('return')), None)


# The search variants whose learning curves are compared: the agent against
# the measuring sticks of the same action space (agent.kind=random, local),
# run as --variant=agent:..., --variant=random:agent.kind=random,...
CURVE_METHODS = ('purl_agent', 'purl_random', 'purl_local')


def curve_runs(net_rows):
  """{(target, method): [best-so-far curve per seed]} of `CURVE_METHODS`,
  at targets where at least two of them ran, cut to the shortest run (equal
  evaluations)."""
  found = {}
  for r in net_rows:
    if r['method'] in CURVE_METHODS and (r.get('curve') or {}).get(
        'final_accuracy'):
      found.setdefault(r['target'], {}).setdefault(r['method'], []).append(
          curves.best_so_far(r['curve']['final_accuracy']))
  out = {}
  for target, by_method in found.items():
    if len(by_method) < 2:
      continue
    n = min(len(c) for runs in by_method.values() for c in runs)
    for method, runs in by_method.items():
      out[(target, method)] = [c[:n] for c in runs]
  return out


def write_learning_curves(out, prefix, net, net_rows):
  """Writes `<prefix><net>_curves_<target>.{json,png}`."""
  runs = curve_runs(net_rows)
  for target in sorted({t for t, _ in runs}):
    stem = os.path.join(out, f'{prefix}{net}_curves_{target}')
    curves.write_curves(
        stem, {m[len('purl_'):]: runs[(t, m)] for t, m in sorted(runs)
               if t == target},
        title=f'{net} at {target}: best reward-split accuracy so far',
        ylabel='best final reward accuracy')


def plots(out, prefix, payload):
  rows = payload['cells']
  for net in sorted({r['net'] for r in rows}):
    net_rows = [r for r in rows if r['net'] == net]
    stats = {}
    for m in compare.methods_in(net_rows):
      for t in sorted({r['target'] for r in net_rows}):
        s = compare.summarize(net_rows, net, t, m)
        if s:
          stats.setdefault(m, []).append((t, s['mean'], s['std'], s['n']))
    dense = [d['test_accuracy'] for d in dense_of(payload, net_rows)]
    report.plot_accuracy_vs_target(
        stats, os.path.join(out, f'{prefix}{net}_accuracy_vs_target.png'),
        compare.mean_std(dense) if dense else None,
        title=f'{net}: test accuracy vs target (mean ± std over seeds)')
    seed = min(r['seed'] for r in net_rows)
    top = max(r['target'] for r in net_rows)
    at = [r for r in net_rows if r['seed'] == seed and r['target'] == top]
    if at:
      order = compare.methods_in(at)
      at.sort(key=lambda r: order.index(r['method']))
      # The results file sorts keys; the chart shows the model's own order.
      layers = [i.name for i in pruning.prunable_layers(getattr(models, net)())]
      rank = {n: k for k, n in enumerate(layers)}
      report.plot_per_layer(
          [{'summary': {'per_layer_sparsity': dict(sorted(
              r['per_layer_sparsity'].items(),
              key=lambda kv: rank.get(kv[0], len(rank))))}} for r in at],
          os.path.join(out, f'{prefix}{net}_per_layer_{top}.png'),
          labels=[r['method'] for r in at])
    write_learning_curves(out, prefix, net, net_rows)
    purl = searched(net_rows)
    if purl:
      c = purl['curve']
      report.plot_search(
          [{'episode': k, 'return': ret, 'accuracies': [acc], 'demo': d}
           for k, (ret, acc, d) in enumerate(zip(c['return'],
                                                 c['final_accuracy'],
                                                 c['demo']))],
          os.path.join(out, f'{prefix}{net}_purl_search.png'),
          f'{net}: PuRL search at {top} (seed {seed})')


def main(argv):
  del argv
  cli_errors.quiet_logging()  # TensorFlow's SavedModel INFO lines
  quick = _QUICK.value
  name = 'fmnist_quick' if quick else 'fmnist'
  prefix = 'quick_' if quick else ''
  if _TAG.value:
    name, prefix = f'fmnist_{_TAG.value}', f'{_TAG.value}_'
  os.makedirs(_OUT.value, exist_ok=True)
  cells = Cells(os.path.join(_OUT.value, f'{name}.json'))
  start = time.time()
  deadline = start + 60 * _BUDGET.value if _BUDGET.value else float('inf')

  def save(missing=()):
    measured = {
        'quick': quick, 'overrides': _OVERRIDES.value,
        'machine': experiment.versions(), 'platform': platform.platform(),
        'peak_rss_mb': peak_rss_mb()}
    if _REPORT_ONLY.value:
      # It measured nothing: the machine and memory of the last piece that
      # ran cells stay as they were.
      measured = {k: v for k, v in measured.items() if k not in cells.payload}
    cells.save(dict(measured, missing=list(missing)))
    write_markdown(os.path.join(_OUT.value, f'{name}.md'), cells.payload,
                   prefix)
    plots(_OUT.value, prefix, cells.payload)

  if not _REPORT_ONLY.value:
    check_methods(_METHODS.value)
    check_searches(quick)
    done = run_cells(cells, quick, deadline, save)
    if not done:
      print(f'budget of {_BUDGET.value} min reached; run the same command '
            'again to continue', flush=True)
  save(missing_cells(cells, quick))
  print(f'wrote {os.path.join(_OUT.value, name)}.json/.md')


def dense_of(payload, net_rows):
  """The dense records of one net's cells.

  A cell names its record (`dense_key`); cells written before it did are
  matched by digest (the free allocations share the dense net's) or, when
  only searches ran (their digests include search settings), by seed, which
  would also take a second dense net of that seed trained with other
  settings.
  """
  net = net_rows[0]['net']
  named = {r['dense_key'] for r in net_rows if r.get('dense_key')}
  legacy = [r for r in net_rows if not r.get('dense_key')]
  digests = {r['config_digest'] for r in legacy}
  by_digest = {k for k, d in payload['dense'].items()
               if d['net'] == net and k.rsplit('/', 1)[1] in digests}
  seeds = {r['seed'] for r in legacy} - {
      payload['dense'][k]['seed'] for k in by_digest}
  by_seed = {k for k, d in payload['dense'].items()
             if d['net'] == net and d['seed'] in seeds}
  keys = named | by_digest | by_seed
  return [payload['dense'][k] for k in sorted(keys) if k in payload['dense']]


def missing_cells(cells: Cells, quick: bool):
  """`net/seed/target/method` of the requested cells not yet measured."""
  nets, seeds, targets = grid(quick)
  out = []
  for net in nets:
    for seed in seeds:
      config = net_config(net, quick, seed)
      out += [f'{net}/{seed}/{t}/{m}' for t, m in requested(targets)
              if cells.find(net, seed, t, m, cell_digest(config, m)) is None]
  return out


def grid(quick: bool):
  """The requested nets, seeds and targets (--quick: fmnist_cnn, 0, 0.9)."""
  nets = ['fmnist_cnn'] if quick and not _NETS.present else _NETS.value
  seeds = [0] if quick and not _SEEDS.present else [int(s) for s in _SEEDS.value]
  targets = ([0.9] if quick and not _TARGETS.present else
             [float(t) for t in _TARGETS.value])
  return nets, seeds, targets


def requested(targets):
  """(target, method) pairs of one (net, seed), in the order they run."""
  variants = [f'purl_{v.split(":", 1)[0]}' for v in _VARIANTS.value]
  at = [float(t) for t in _VARIANT_TARGETS.value] or targets
  return [(t, m) for t in targets for m in list(_METHODS.value) + [
      v for v in variants if any(abs(t - a) < 1e-9 for a in at)]]


if __name__ == '__main__':
  app.run(main)
