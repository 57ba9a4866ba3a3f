"""Paired multi-seed comparison of pruning methods.

A benchmark cell is one (net, seed, target, method): every method of one
(net, seed) prunes the same dense net and gets the same final fine-tune, so
methods are compared *paired* by seed. A difference is called a win or a
loss only when its mean exceeds twice its standard error; otherwise it is a
tie. With fewer than two paired seeds there is no standard error and no
verdict.
"""

import math
from typing import Dict, Iterable, List, Optional, Sequence

BASELINES = ('uniform', 'global_magnitude', 'lamp', 'erk', 'sensitivity')


def mean_std(values: Sequence[float]) -> tuple:
  """(mean, sample standard deviation; 0 for one value)."""
  n = len(values)
  if not n:
    raise ValueError('no values')
  mean = sum(values) / n
  if n == 1:
    return mean, 0.0
  var = sum((v - mean) ** 2 for v in values) / (n - 1)
  return mean, math.sqrt(var)


def by_seed(rows: Iterable[dict], net: str, target: float,
            method: str) -> Dict[int, float]:
  """`{seed: test accuracy}` of one method at one (net, target)."""
  return {int(r['seed']): float(r['test_accuracy']) for r in rows
          if r['net'] == net and r['method'] == method and
          abs(float(r['target']) - float(target)) < 1e-9}


def summarize(rows: Sequence[dict], net: str, target: float,
              method: str) -> Optional[dict]:
  """Mean, std and count of a method's test accuracy over seeds."""
  acc = by_seed(rows, net, target, method)
  if not acc:
    return None
  mean, std = mean_std(list(acc.values()))
  return {'mean': mean, 'std': std, 'n': len(acc), 'seeds': sorted(acc)}


def best_baseline(rows: Sequence[dict], net: str, target: float,
                  baselines: Sequence[str] = BASELINES,
                  seeds: Optional[Sequence[int]] = None) -> Optional[str]:
  """The baseline with the highest mean test accuracy (over those of `seeds`
  it has, if given)."""
  best, best_mean = None, -math.inf
  for method in baselines:
    acc = by_seed(rows, net, target, method)
    if seeds is not None:
      acc = {s: a for s, a in acc.items() if s in seeds}
    if acc:
      mean = sum(acc.values()) / len(acc)
      if mean > best_mean:
        best, best_mean = method, mean
  return best


def best_of(accuracy: Dict[str, float]) -> str:
  """The method with the highest accuracy in `{method: accuracy}`; a tie
  goes to the name that sorts last, so every table breaks it alike."""
  return max((a, m) for m, a in accuracy.items())[1]


def paired(rows: Sequence[dict], net: str, target: float, method: str,
           other: str) -> Optional[dict]:
  """`method - other` over the seeds both have.

  Returns:
    `{'mean', 'se', 'n', 'wins', 'diffs', 'verdict'}` where `verdict` is
    'win' or 'loss' when |mean| > 2 SE, 'tie' otherwise, and None without
    two paired seeds; None when no seed is shared.
  """
  a = by_seed(rows, net, target, method)
  b = by_seed(rows, net, target, other)
  seeds = sorted(set(a) & set(b))
  if not seeds:
    return None
  diffs = [a[s] - b[s] for s in seeds]
  mean, std = mean_std(diffs)
  n = len(diffs)
  se = std / math.sqrt(n) if n > 1 else None
  verdict = None
  if se is not None:
    if abs(mean) > 2 * se:
      verdict = 'win' if mean > 0 else 'loss'
    else:
      verdict = 'tie'
  return {'mean': mean, 'se': se, 'n': n, 'diffs': diffs, 'seeds': seeds,
          'wins': sum(d > 0 for d in diffs), 'verdict': verdict}


def against_best_baseline(rows: Sequence[dict], net: str, target: float,
                          method: str,
                          baselines: Sequence[str] = BASELINES
                          ) -> Optional[dict]:
  """`paired(method, best baseline)`, the best chosen on the shared seeds."""
  seeds = sorted(by_seed(rows, net, target, method))
  if not seeds:
    return None
  best = best_baseline(rows, net, target, baselines, seeds)
  if best is None:
    return None
  result = paired(rows, net, target, method, best)
  result['baseline'] = best
  return result


def against_oracle(rows: Sequence[dict], net: str, target: float,
                   method: str, baselines: Sequence[str] = BASELINES
                   ) -> Optional[dict]:
  """`method` minus the best baseline *of each seed* (an oracle).

  No user can pick that allocation without running them all through the
  final fine-tune: it bounds what choosing among free allocations can reach.
  A search that only ever returns one of them (a reference) ties the
  oracle when it always picks the seed's best and loses to it otherwise;
  beating it means it found an allocation that none of them is.

  Returns:
    As `paired`, over the seeds `method` has and where at least one baseline
    was measured, with `'picks'` the baseline that was best on each seed;
    None without such a seed.
  """
  mine = by_seed(rows, net, target, method)
  per = {b: by_seed(rows, net, target, b) for b in baselines}
  seeds = sorted(s for s in mine if any(s in acc for acc in per.values()))
  if not seeds:
    return None
  picks = [best_of({b: acc[s] for b, acc in per.items() if s in acc})
           for s in seeds]
  oracle = [{'net': net, 'target': target, 'method': '_oracle', 'seed': s,
             'test_accuracy': per[b][s]} for s, b in zip(seeds, picks)]
  result = paired(list(rows) + oracle, net, target, method, '_oracle')
  result['baseline'] = 'per-seed best'
  result['picks'] = picks
  return result


def format_pm(mean: float, std: float, n: int) -> str:
  """'0.8812 ± 0.0031 (3)'."""
  return f'{mean:.4f} ± {std:.4f} ({n})'


def verdict_text(p: dict) -> str:
  """A one-cell Markdown verdict of a paired difference in points."""
  if p is None:
    return '-'
  se = f' ± {100 * p["se"]:.2f}' if p['se'] is not None else ''
  word = p['verdict'] or 'one seed'
  points = 100 * p['mean']
  if abs(points) < 0.005:  # no '-0.00' for a difference that rounds to 0
    points = 0.0
  return (f'{points:+.2f}{se} pt vs {p.get("baseline", "")}, '
          f'{p["wins"]}/{p["n"]} seeds: **{word}**')


def methods_in(rows: Iterable[dict]) -> List[str]:
  """Methods in the order the report shows them: baselines first."""
  present = {r['method'] for r in rows}
  ordered = [m for m in BASELINES if m in present]
  return ordered + sorted(present - set(ordered))
