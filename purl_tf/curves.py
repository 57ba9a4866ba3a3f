"""Learning curves: the best score found so far against evaluations spent.

An agent that has learned finds better allocations than random search in
the same number of episodes; the curve that shows it is the best-so-far
episode score (by `select.episode_score`) after each episode, for each
search strategy (`agent.kind`), over several seeds. `write_curves` writes
the runs, their mean and standard deviation as JSON and a PNG with a band
per strategy.
"""

import math
import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from purl_tf import io_utils


def best_so_far(scores: Sequence[Optional[float]]) -> List[float]:
  """The running maximum of episode scores.

  An episode without a score (None or NaN: it diverged or missed the
  budget) keeps the previous best; before the first scored episode the
  curve is NaN.
  """
  out, best = [], math.nan
  for s in scores:
    if s is not None and not math.isnan(float(s)):
      best = float(s) if math.isnan(best) else max(best, float(s))
    out.append(best)
  return out


def summarize(runs: Sequence[Sequence[float]]) -> Dict[str, List[float]]:
  """Mean and standard deviation (ddof 1; 0 for one run) per evaluation
  over the runs (curves of equal length), NaNs ignored."""
  if not runs:
    raise ValueError('no curves to summarize')
  lengths = {len(r) for r in runs}
  if len(lengths) != 1:
    raise ValueError(f'curves of different lengths {sorted(lengths)}: '
                     'compare strategies at equal evaluations')
  a = np.asarray(runs, np.float64)
  counts = np.sum(~np.isnan(a), axis=0)
  mean = [float(np.nanmean(col)) if n else math.nan
          for col, n in zip(a.T, counts)]
  std = [float(np.nanstd(col, ddof=1)) if n > 1 else 0.0
         for col, n in zip(a.T, counts)]
  return {'mean': mean, 'std': std}


def write_curves(stem: str, curves: Dict[str, Sequence[Sequence[float]]],
                 title: str = '', ylabel: str = 'best score so far') -> tuple:
  """Writes `<stem>.json` and `<stem>.png`.

  Args:
    stem: output path without extension; its file name must contain
      'curve' (how the results directory names them).
    curves: `{strategy: [run, ...]}`, each run a best-so-far curve.
    title, ylabel: of the plot.

  Returns:
    (json path, png path).

  Raises:
    ValueError: a stem without 'curve', no curves, or runs of a strategy
      with different lengths.
  """
  if 'curve' not in os.path.basename(stem):
    raise ValueError(f'a learning-curve file name must contain "curve": {stem}')
  if not curves:
    raise ValueError('no curves to write')
  payload = {name: dict(summarize(runs), runs=[list(map(float, r)) for r in runs])
             for name, runs in curves.items()}
  io_utils.write_json_atomic(stem + '.json', payload)
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6, 3.5))
  for name, row in payload.items():
    x = np.arange(1, len(row['mean']) + 1)
    mean, std = np.asarray(row['mean']), np.asarray(row['std'])
    ax.plot(x, mean, label=f'{name} ({len(row["runs"])} runs)')
    ax.fill_between(x, mean - std, mean + std, alpha=0.2)
  ax.set_xlabel('episodes (evaluations)')
  ax.set_ylabel(ylabel)
  if title:
    ax.set_title(title)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(stem + '.png', dpi=90)
  plt.close(fig)
  return stem + '.json', stem + '.png'
