r"""How should the re-ranking choose among the search's demonstrations?

On `fmnist_resnet` the search returned one of its demonstrations (LAMP, ERK,
its sensitivity allocation) in every benchmark cell: what it adds is that
choice, made by the re-ranking's proxy (`PruningEnv.ramp_accuracy`, a short
copy of the final fine-tune). This study re-scores the demonstrations on
the benchmark's dense nets as the search does (the same environment and
settings, the same per-candidate seed) and keeps each one's per-example
correctness, so that choice rules can be compared offline. The scores are
a fresh draw of the proxy, not the search's own: the order of the
fine-tune batches also depends on TensorFlow's global seed, which the search
last set for its final episode and this study sets to the seed, so they do
not reproduce the numbers the benchmark's search printed (seed 0 at 90%:
LAMP 0.8844 here, 0.8748 there) and the picks can differ from the search's.
Two draws side by side measure how much the proxy moves with the batch order
alone. The rules:

  best        the highest re-ranking score (`search.rerank_incumbent='best'`,
              the default).
  first       the first reference (LAMP) unless another demonstration beats
              it by more than `search.rerank_z` paired standard errors
              (`search.rerank_incumbent='first'`).

A rule's test accuracy in a cell is that of the demonstration it picks: a
returned demonstration prunes exactly its allocation, so LAMP's and ERK's
are the `lamp` and `erk` cells of `fmnist.json`, and the sensitivity
demonstration's is the purl cell's where the search returned it (elsewhere
unknown, and reported as such).

  python benchmarks/rerank_study.py --seeds=0,1,2,3,4 --targets=0.9,0.95,0.98

Resumable: each (seed, target) is written to
benchmarks/results/rerank_fmnist_resnet.json as it finishes, and skipped on a
rerun; the Markdown beside it is rewritten each time.

With `--order=common --draws=N` it measures the re-ranking the search runs
with `search.rerank_order='common'` (one batch order for every candidate)
draw by draw, and asks of the free allocations whose test accuracy the
benchmark has measured (`--references=lamp,erk,lamp+erk`): how often do
two draws pick alike, and what does a pick by the mean of k draws test at,
beside always taking one allocation, and beside keeping one allocation
unless another beats it by `search.rerank_z` paired standard errors over k
draws (`search.rerank_incumbent='first'` with it played first)? Written to
rerank_fmnist_resnet_common.json/.md:

  python benchmarks/rerank_study.py --order=common --draws=4 \
    --references=lamp,erk,lamp+erk --targets=0.98
"""

import json
import os
import statistics
import time

from absl import app
from absl import flags
import numpy as np

import study_common  # pylint: disable=g-import-not-at-top
from purl_tf import allocation, cli_errors, io_utils, rerank, search_loop
from purl_tf.compat import keras

_ORDER = flags.DEFINE_enum('order', 'candidate', rerank.ORDERS,
                           'search.rerank_order of the re-scoring.')
_DRAWS = flags.DEFINE_integer('draws', 1, 'Draws per demonstration, each '
                              'kept apart.', lower_bound=1)
_REFERENCES = flags.DEFINE_string(
    'references', '', 'Demonstrations (default: the config\'s '
    'search.references).')
NET = study_common.NET


def choose(scores, correct, order, z, rule):
  """The demonstration `rerank.choose` picks with incumbent
  `rule` ('best' or 'first'), the demonstrations played in `order`
  (`correct`: each one's unpacked per-example vector)."""
  cands = [{'episode': k, 'demo': True} for k in range(len(order))]
  pick = rerank.choose(
      cands, {str(k): scores[n] for k, n in enumerate(order)},
      {str(k): correct[n] for k, n in enumerate(order)}, z, rule)
  return order[pick['episode']]


def unpacked(cell):
  """A cell's per-example vectors by demonstration, unpacked."""
  return {n: rerank.unpack_correct(v) for n, v in cell['correct'].items()}


def block_pick(cell, vectors, incumbent: str, block, draws: int) -> str:
  """What `search.rerank_incumbent='first'` keeps with `incumbent` played
  first, on the draws in `block` of a cell measured with `draws` draws
  (`vectors`: `unpacked(cell)`): the other demonstrations must beat it by
  `rerank_z` paired standard errors over those draws' examples."""
  order = [incumbent] + [n for n in cell['order'] if n != incumbent]
  mine = {}
  for n in order:
    per = len(vectors[n]) // draws
    mine[n] = np.concatenate([vectors[n][d * per:(d + 1) * per]
                              for d in block])
  return choose({n: float(mine[n].mean()) for n in order}, mine, order,
                float(cell['rerank_z']), 'first')


def measure(seed: int, targets):
  """Re-ranking score and per-example correctness of every demonstration."""
  def configure(config):
    config.search.rerank_order = _ORDER.value
    if _REFERENCES.value:
      config.search.references = _REFERENCES.value
  config, ctx = study_common.prepare('rerank', seed, configure)
  out = {}
  keras.utils.set_random_seed(seed)
  env = search_loop.build_env(ctx.dense, ctx.splits.search_train,
                              ctx.splits.reward, config, ctx.strategy)
  # One scan serves every target (the search scans the same grid for each
  # target up to 0.98; its value above the target is already in it).
  grid = allocation.grid_for_target(config.search.sensitivity_grid,
                                    max(targets))
  names = search_loop.parse_references(str(config.search.references))
  scan = env.sensitivity_scan(grid) if 'sensitivity' in names else None
  for target in targets:
    demos = search_loop.reference_allocations(
        str(config.search.references), ctx.dense, target)
    if 'sensitivity' in demos:
      demos['sensitivity'] = allocation.pick_by_sensitivity(env.infos, scan,
                                                            target)
    cell = {'order': list(demos), 'scores': {}, 'correct': {},
            'rerank_z': float(config.search.rerank_z)}
    if _DRAWS.value > 1:
      cell['draws'] = {}
    for k, name in enumerate(demos):
      # As the search's re-ranking: demonstration k is played as episode k.
      vectors = [rerank.correct_per_example(env, demos[name], config, k, [d])
                 for d in range(_DRAWS.value)]
      correct = np.concatenate(vectors)
      cell['scores'][name] = float(correct.mean()) if len(correct) else 0.0
      cell['correct'][name] = rerank.pack_correct(correct)
      if 'draws' in cell:
        cell['draws'][name] = [float(v.mean()) for v in vectors]
      print(f'seed {seed} @{target} {name}: {cell["scores"][name]:.4f}' +
            (f' (draws {", ".join(f"{v.mean():.4f}" for v in vectors)})'
             if 'draws' in cell else ''), flush=True)
    out[f'{target:g}'] = cell
  return out


def report(payload, cells) -> str:
  """The Markdown: per cell, each rule's pick and its test accuracy."""
  lines = [f'# Choosing among the demonstrations ({NET})', '',
           'Re-ranking scores of the search\'s demonstrations and what two '
           'rules pick, against test accuracies from `fmnist.json` (see '
           '`benchmarks/rerank_study.py`). `?`: the sensitivity '
           'demonstration\'s test accuracy is known only where the search '
           'returned it.', '',
           '| target | seed | lamp | erk | sensitivity | z(erk-lamp) | '
           'z(sens-lamp) | best: pick / test | first: pick / test |',
           '|---|---|---|---|---|---|---|---|---|']
  means = {}
  for seed, target, cell in study_common.cells_in_order(payload):
    s, order = cell['scores'], cell['order']
    vectors = unpacked(cell)
    z = {n: rerank.paired_z(vectors[n], vectors[order[0]])
         for n in order[1:]}
    row = [f'{target:.2f}', str(seed)] + [f'{s.get(n, 0):.4f}' for n in
                                          ('lamp', 'erk', 'sensitivity')]
    row += [f'{z.get("erk", 0):+.1f}', f'{z.get("sensitivity", 0):+.1f}']
    for rule in ('best', 'first'):
      pick = choose(s, vectors, order, cell['rerank_z'], rule)
      acc = test_accuracy(cells, seed, target, pick)
      means.setdefault((target, rule), []).append(acc)
      row.append(f'{pick} / ' + ('?' if acc is None else f'{acc:.4f}'))
    lines.append('| ' + ' | '.join(row) + ' |')
  lines += ['', '| target | rule | mean test accuracy | seeds |',
            '|---|---|---|---|']
  for (target, rule), accs in sorted(means.items()):
    known = [a for a in accs if a is not None]
    mean = f'{statistics.mean(known):.4f}' if len(known) == len(accs) else (
        f'unknown ({len(accs) - len(known)} picks untested)')
    lines.append(f'| {target:.2f} | {rule} | {mean} | {len(accs)} |')
  return '\n'.join(lines) + '\n'


def report_draws(payload, cells) -> str:
  """The Markdown of a study run with --draws > 1: per cell, each draw's
  scores and pick; per target, a pick by the mean of k draws beside each
  allocation always taken."""
  settings = payload['settings']
  draws = int(settings['draws'])
  ks = [k for k in (1, 2, 4, 8) if k <= draws and draws % k == 0]
  lines = [f'# Re-ranking draw by draw ({NET}, order {settings["order"]})',
           '', f'{draws} draws of the re-ranking per demonstration '
           f'(`search.rerank_order={settings["order"]!r}`), each a short '
           'fine-tune in another batch order, against the test accuracies '
           'the benchmark measured for the same allocations (`fmnist.json`; '
           'see `benchmarks/rerank_study.py`). A pick by k draws takes the '
           'best mean score over a block of k draws; its test accuracy is '
           'averaged over the disjoint blocks.', '']
  by_target = {}
  for seed, target, cell in study_common.cells_in_order(payload):
    order = cell['order']
    test = {n: test_accuracy(cells, seed, target, n) for n in order}
    if any(v is None for v in test.values()):
      lines.append(f'- {target:.2f} seed {seed}: skipped (untested: '
                   f'{", ".join(n for n in order if test[n] is None)})')
      continue
    by_target.setdefault(target, []).append((seed, cell, test))
  for target, rows in sorted(by_target.items()):
    order = rows[0][1]['order']
    lines += [f'## Target {target:.2f}', '',
              '| seed | ' + ' | '.join(f'{n} (test)' for n in order) +
              ' | picks by draw | best on test |',
              '|---|' + '---|' * (len(order) + 2)]
    picked = {k: [] for k in ks}
    # The paired rule needs each draw's examples, which a payload may lack.
    paired = all('correct' in c for _, c, _ in rows)
    firsts = {(n, k): [] for n in order for k in ks} if paired else {}
    fixed = {n: [] for n in order}
    agree = hits = pairs = singles = 0
    for seed, cell, test in rows:
      scores = cell['draws']
      vectors = unpacked(cell) if paired else {}
      one = [max(order, key=lambda n, d=d: (scores[n][d], -order.index(n)))
             for d in range(draws)]
      best = max(order, key=lambda n: (test[n], -order.index(n)))
      agree += sum(a == b for i, a in enumerate(one) for b in one[i + 1:])
      pairs += draws * (draws - 1) // 2
      hits += sum(p == best for p in one)
      singles += draws
      for k in ks:
        blocks = [range(b, b + k) for b in range(0, draws, k)]
        picks = [max(order, key=lambda n, r=r: (
            statistics.mean(scores[n][d] for d in r), -order.index(n)))
                 for r in blocks]
        picked[k].append(statistics.mean(test[p] for p in picks))
        for n in (order if paired else ()):
          firsts[(n, k)].append(statistics.mean(
              test[block_pick(cell, vectors, n, r, draws)]
              for r in blocks))
      for n in order:
        fixed[n].append(test[n])
      lines.append(f'| {seed} | ' + ' | '.join(
          f'{statistics.mean(scores[n]):.4f} ({test[n]:.4f})'
          for n in order) + f' | {", ".join(one)} | {best} |')
    strongest = max(order, key=lambda n: statistics.mean(fixed[n]))
    lines += ['', f'Two single draws pick alike in {agree}/{pairs} pairs; a '
              f'single draw picks the best-testing allocation in '
              f'{hits}/{singles}.', '',
              '| rule | mean test accuracy | minus ' + strongest +
              ' (paired, pt) | seeds |', '|---|---|---|---|']
    for n in order:
      lines.append(f'| always {n} | {statistics.mean(fixed[n]):.4f} | ' +
                   study_common.paired(fixed[n], fixed[strongest]) +
                   f' | {len(fixed[n])} |')
    for k in ks:
      lines.append(f'| pick by {k} draw(s) | {statistics.mean(picked[k]):.4f}'
                   f' | {study_common.paired(picked[k], fixed[strongest])} | '
                   f'{len(picked[k])} |')
    for (n, k), accs in firsts.items():
      lines.append(f'| {n} unless beaten by {rows[0][1]["rerank_z"]:g} paired '
                   f'SE over {k} draw(s) | {statistics.mean(accs):.4f} | '
                   f'{study_common.paired(accs, fixed[strongest])} | {len(accs)} |')
    lines.append('')
  return '\n'.join(lines) + '\n'


def test_accuracy(cells, seed, target, pick):
  if allocation.is_free(pick):
    free = study_common.benchmark_cell(cells, seed, target, pick)
    return free['test_accuracy'] if free else None
  purl = study_common.benchmark_cell(cells, seed, target, 'purl')
  if purl and purl.get('best_reference') == pick:
    return purl['test_accuracy']
  return None


def main(argv):
  del argv
  cli_errors.quiet_logging()
  with open(os.path.join(study_common.OUT.value, 'fmnist.json')) as f:
    cells = json.load(f)['cells']
  settings = {'order': _ORDER.value, 'draws': _DRAWS.value,
              'references': _REFERENCES.value}
  default = settings == {'order': 'candidate', 'draws': 1, 'references': ''}
  path = os.path.join(study_common.OUT.value, f'rerank_{NET}' + (
      '' if default else f'_{_ORDER.value}') + '.json')
  payload = {'cells': {}, 'settings': settings}
  if os.path.exists(path):
    with open(path) as f:
      payload = json.load(f)
    # The default file predates the settings: it holds the default's.
    held = payload.setdefault('settings', settings if default else {})
    if held != settings:
      raise ValueError(f'{path} holds a study run with {held}, not '
                       f'{settings}: rerun with those flags, or move it')
  targets = [float(t) for t in study_common.TARGETS.value]

  def save():
    io_utils.write_json_atomic(path, payload)
    with open(path[:-5] + '.md', 'w') as f:
      f.write(report_draws(payload, cells) if _DRAWS.value > 1 else
              report(payload, cells))

  for seed in [int(s) for s in study_common.SEEDS.value]:
    todo = [t for t in targets if f'{seed}@{t:g}' not in payload['cells']]
    if not todo:
      continue
    t0 = time.perf_counter()
    for target, cell in measure(seed, todo).items():
      payload['cells'][f'{seed}@{target}'] = cell
    print(f'seed {seed}: {time.perf_counter() - t0:.0f}s', flush=True)
    save()
  save()  # the Markdown again, from fmnist.json as it is now
  print(f'wrote {path[:-5]}.json/.md')


if __name__ == '__main__':
  app.run(main)
