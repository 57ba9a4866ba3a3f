r"""How should the finalists be chosen? Per-example scores of each one.

With `search.finalists`, `fmnist_resnet`'s search gives each of its
demonstrations (LAMP, ERK, their blend) and its best agent episode the final
fine-tune, scores each fine-tuned net on the reward split and keeps the best
by accuracy (`rerank.choose`). In the benchmark it returned a demonstration in
every cell, and at 90% it lost to always taking LAMP by 0.12 pt: the three
nets' reward-split accuracies were 0.02-0.24 pt apart, closer than 5,000
examples resolve. This study fine-tunes the demonstrations again exactly as
the search did (the final fine-tune is deterministic for a dense net and an
allocation: each net's test accuracy is checked against the benchmark's
cells) and keeps, per example, whether each net is right and its
cross-entropy on the reward split, and whether it is right on the test
split, so that choice rules can be compared offline:

  accuracy    the best reward-split accuracy (the default).
  loss        the lowest mean reward-split cross-entropy: a proper scoring
              rule, which counts how sure a net is, not only whether it is
              right, and so varies less from one 5,000-example split to
              another than accuracy does.
  first z     LAMP (the first reference) unless another beats its accuracy
              by more than z paired standard errors
              (`search.rerank_incumbent='first'`).
  first loss z  the same on cross-entropy: LAMP unless another's is lower
              by more than z paired standard errors of the per-example
              difference.

The agent's finalist is left out: it never scored above the best
demonstration in the benchmark, and its allocation is not kept in the cells.

  python benchmarks/finalist_study.py --seeds=0,1,2,3,4 --targets=0.9,0.95,0.98

Other candidates: `--references` (default: the config's, LAMP, ERK and their
blend) adds nets to the same cells, such as blends weighted towards one side
('lamp+lamp+erk', 'lamp+erk+erk'), and `--tag` names that candidate set's
report; the rules then choose among the listed nets, the first as the
incumbent:

  python benchmarks/finalist_study.py --targets=0.98 --tag=weighted \
      --references=lamp,erk,lamp+erk,lamp+lamp+erk,lamp+erk+erk

Resumable: each net of each (seed, target) is written to
benchmarks/results/finalist_fmnist_resnet.json as it finishes and skipped on
a rerun (a net another candidate set measured is not fine-tuned again); the
Markdown of the candidate set (finalist_fmnist_resnet[_TAG].md) is rewritten
each time.
"""

import json
import os
import statistics
import time

from absl import app
from absl import flags
import ml_collections

import study_common  # pylint: disable=g-import-not-at-top
from purl_tf import cli_errors, config_defaults, experiment, finalists
from purl_tf import io_utils, rerank
from purl_tf import search_loop, train

NET = study_common.NET
_REFERENCES = flags.DEFINE_string(
    'references', '', 'The candidates, comma-separated, the incumbent first '
    '(empty: the config\'s search.references).')
_TAG = flags.DEFINE_string('tag', '', 'Names this candidate set\'s report '
                           'finalist_NET_TAG.md (empty: the default set\'s).')
# The thresholds of the 'first' rule reported.
FIRST_Z = (1.0, 2.0)


def measure(seed: int, targets, references: str, known, cells,
            dense_records, save_cell):
  """Fine-tunes each candidate of the seed at each target that `known`
  (the study's cells, by 'seed@target') lacks; calls `save_cell(target,
  cell)` after each net."""
  config, ctx = study_common.prepare('finalist', seed)
  digest = experiment.weights_digest(ctx.dense)
  recorded = [d for d in dense_records.values()
              if d.get('net') == NET and d.get('seed') == seed]
  if recorded and all(d.get('weights_sha256') != digest for d in recorded):
    raise ValueError(f'seed {seed}: the cached dense net ({digest}) is not '
                     'the one the benchmark\'s cells pruned')
  for target in targets:
    demos = search_loop.reference_allocations(
        references or str(config.search.references), ctx.dense, target)
    cell = known.get(f'{seed}@{target:g}') or {
        'order': [], 'reward_accuracy': {}, 'reward_loss': {},
        'test_accuracy': {}, 'correct': {}, 'loss': {}, 'test_correct': {},
        'finetune_s': {}}
    for name, alloc in demos.items():
      if name in cell['test_accuracy']:
        continue
      t0 = time.perf_counter()
      ft = experiment.final_finetune(ctx, alloc, method=name, target=target,
                                     verbose=0)
      correct, loss = train.per_example(ft.model, ctx.splits.reward)
      test_correct, _ = train.per_example(ft.model, ctx.splits.test)
      cell['reward_accuracy'][name] = float(correct.mean())
      cell['reward_loss'][name] = float(loss.mean())
      cell['test_accuracy'][name] = float(test_correct.mean())
      cell['correct'][name] = rerank.pack_correct(correct)
      cell['loss'][name] = rerank.pack_floats(loss)
      cell['test_correct'][name] = rerank.pack_correct(test_correct)
      cell['finetune_s'][name] = time.perf_counter() - t0
      # 'order': every net of the cell, in the order first measured.
      cell['order'].append(name)
      print(f'seed {seed} @{target:g} {name}: reward acc '
            f'{correct.mean():.4f} loss {loss.mean():.4f}, test acc '
            f'{test_correct.mean():.4f} ({cell["finetune_s"][name]:.0f}s)',
            flush=True)
      save_cell(target, cell)


def picks(cell, order):
  """What each rule picks among the nets `order` of a cell (the first the
  incumbent): {rule: net}, each by `finalists.choose` (the search's own
  choice) on the cell's scores."""
  # The finalists as the search keeps them: demonstration k as episode k.
  cands = [{'episode': k, 'demo': True} for k in range(len(order))]
  state = search_loop.SearchState(
      finalists={str(k): cell['reward_accuracy'][n]
                 for k, n in enumerate(order)},
      finalists_correct={str(k): cell['correct'][n]
                         for k, n in enumerate(order)},
      finalists_loss={str(k): cell['reward_loss'][n]
                      for k, n in enumerate(order)},
      finalists_loss_examples={str(k): cell['loss'][n]
                               for k, n in enumerate(order)})
  rules = {'accuracy': ('accuracy', 0.0, 'best'),
           'loss': ('loss', 0.0, 'best')}
  for name, score in (('first', 'accuracy'), ('first loss', 'loss')):
    for z in FIRST_Z:
      rules[f'{name} {z:g}'] = (score, z, 'first')
  out = {}
  for rule, (score, z, incumbent) in rules.items():
    search = ml_collections.ConfigDict(dict(
        finalist_score=score, finalist_z=z, rerank_incumbent=incumbent))
    out[rule] = order[finalists.choose(cands, state, search)['episode']]
  return out


def report(payload, cells, order, demos) -> str:
  """The Markdown of the candidate set `order` (the first the incumbent),
  over the cells that have every one of its nets: per cell each net's
  scores and each rule's pick; per target each rule's mean test accuracy
  against always taking one allocation and against the benchmark's best
  baseline. `demos`: the search's demonstrations (the config's references),
  for the check against the purl cells that returned one."""
  lines = [f'# Choosing among the finalists ({NET})', '',
           f'Candidates: {", ".join(order)}. Each one\'s final fine-tune, '
           'scored on the reward split '
           '(accuracy, mean cross-entropy) and tested; what each choice rule '
           'picks (see `benchmarks/finalist_study.py`). "check" compares the '
           'test accuracy with the benchmark\'s cell of the same allocation '
           '(`fmnist.json`: the lamp and erk cells, and the purl cell where '
           'it returned that demonstration): the final fine-tune is '
           'deterministic, so they must be equal.', '']
  by_target = {}
  for seed, target, cell in study_common.cells_in_order(payload):
    if all(n in cell['test_accuracy'] for n in order):
      by_target.setdefault(target, []).append((seed, cell))
  for target, rows in sorted(by_target.items()):
    rules = list(picks(rows[0][1], order))
    lines += [f'## Target {target:.2f}', '',
              'Per net: reward-split accuracy / cross-entropy / test '
              f'accuracy; "z vs {order[0]}": paired standard errors by which '
              f'a net\'s reward-split accuracy / cross-entropy is better than '
              f'{order[0]}\'s; then each rule\'s pick.', '',
              '| seed | ' + ' | '.join(f'{n}' for n in order) + ' | ' +
              ' | '.join(f'{n}: z vs {order[0]}' for n in order[1:]) + ' | ' +
              ' | '.join(rules) + ' | check |',
              '|---|' + '---|' * (2 * len(order) - 1 + len(rules) + 1)]
    tested = {r: [] for r in rules}
    fixed = {n: [] for n in order}
    oracle, baseline = [], []
    for seed, cell in rows:
      test = cell['test_accuracy']
      chosen = picks(cell, order)
      for r in rules:
        tested[r].append(test[chosen[r]])
      for n in order:
        fixed[n].append(test[n])
      oracle.append(max(test[n] for n in order))
      mismatches = []
      purl = study_common.benchmark_cell(cells, seed, target, 'purl')
      for n in order:
        ref = study_common.benchmark_cell(cells, seed, target, n)
        if ref is None and purl and purl.get('best_reference') == n and (
            purl.get('best_episode') or 0) <= len(demos):
          ref = purl
        if ref is not None and abs(ref['test_accuracy'] - test[n]) > 5e-5:
          mismatches.append(f'{n} {ref["test_accuracy"]:.4f}')
      vectors = {n: rerank.unpack_correct(v) for n, v in cell['correct'].items()}
      losses = {n: rerank.unpack_floats(v) for n, v in cell['loss'].items()}
      lines.append(
          f'| {seed} | ' + ' | '.join(
              f'{cell["reward_accuracy"][n]:.4f} / '
              f'{cell["reward_loss"][n]:.4f} / {test[n]:.4f}' for n in order) +
          ' | ' + ' | '.join(
              f'{rerank.paired_z(vectors[n], vectors[order[0]]):+.1f} / '
              f'{rerank.paired_z(-losses[n], -losses[order[0]]):+.1f}'
              for n in order[1:]) +
          ' | ' + ' | '.join(chosen[r] for r in rules) + ' | ' +
          ('differs: ' + ', '.join(mismatches) if mismatches else 'equal') +
          ' |')
      # The benchmark's best baseline at this target, by its 5-seed mean.
      base = {m: study_common.benchmark_cell(cells, seed, target, m) for m in
              ('uniform', 'global_magnitude', 'sensitivity', 'lamp', 'erk')}
      baseline.append({m: r['test_accuracy'] for m, r in base.items() if r})
    common = [m for m in baseline[0] if all(m in b for b in baseline)]
    best = max(common, key=lambda m: statistics.mean(b[m] for b in baseline))
    best_acc = [b[best] for b in baseline]
    lines += ['', f'Best baseline at {target:.2f} over these seeds: {best} '
              f'({statistics.mean(best_acc):.4f}).', '',
              f'| rule | mean test accuracy | minus {best} (paired, pt) | '
              'seeds |', '|---|---|---|---|']
    for n in order:
      lines.append(f'| always {n} | {statistics.mean(fixed[n]):.4f} | '
                   f'{study_common.paired(fixed[n], best_acc)} | {len(rows)} |')
    for r in rules:
      lines.append(f'| by {r} | {statistics.mean(tested[r]):.4f} | '
                   f'{study_common.paired(tested[r], best_acc)} | {len(rows)} |')
    lines.append(f'| best on test (oracle) | {statistics.mean(oracle):.4f} | '
                 f'{study_common.paired(oracle, best_acc)} | {len(rows)} |')
    lines.append('')
  return '\n'.join(lines) + '\n'


def main(argv):
  del argv
  cli_errors.quiet_logging()
  with open(os.path.join(study_common.OUT.value, 'fmnist.json')) as f:
    bench = json.load(f)
  cells = bench['cells']
  path = os.path.join(study_common.OUT.value, f'finalist_{NET}.json')
  md = path[:-5] + (f'_{_TAG.value}' if _TAG.value else '') + '.md'
  payload = {'cells': {}}
  if os.path.exists(path):
    with open(path) as f:
      payload = json.load(f)
  targets = [float(t) for t in study_common.TARGETS.value]
  demos = search_loop.parse_references(str(config_defaults.load(
      os.path.join(study_common.REPO, 'configs', f'{NET}.py')
  ).search.references))
  order = search_loop.parse_references(_REFERENCES.value) or demos

  def save():
    io_utils.write_json_atomic(path, payload)
    with open(md, 'w') as f:
      f.write(report(payload, cells, order, demos))

  def save_cell(target, cell):
    payload['cells'][f'{seed}@{target:g}'] = cell
    save()

  for seed in [int(s) for s in study_common.SEEDS.value]:
    todo = [t for t in targets if not all(
        n in payload['cells'].get(f'{seed}@{t:g}', {}).get('test_accuracy', {})
        for n in order)]
    if not todo:
      continue
    t0 = time.perf_counter()
    measure(seed, todo, ','.join(order), payload['cells'], cells,
            bench['dense'], save_cell)
    print(f'seed {seed}: {time.perf_counter() - t0:.0f}s', flush=True)
  save()
  print(f'wrote {path} and {md}')


if __name__ == '__main__':
  app.run(main)
