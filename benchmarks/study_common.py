"""What the studies of the benchmark's cells share (`rerank_study.py`,
`finalist_study.py`): their flags, the benchmark's dense net of a seed, the
benchmark's cells, and paired differences as the reports print them."""

import os
import statistics
import sys

from absl import flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import purl_tf  # pylint: disable=g-import-not-at-top,unused-import
from purl_tf import config_defaults, experiment, search_loop

NET = 'fmnist_resnet'

SEEDS = flags.DEFINE_list('seeds', ['0', '1', '2', '3', '4'], 'Seeds.')
TARGETS = flags.DEFINE_list('targets', ['0.9', '0.95', '0.98'], 'Targets.')
OUT = flags.DEFINE_string('out', os.path.join(REPO, 'benchmarks', 'results'),
                          'Results directory (reads fmnist.json there).')
WORKDIR = flags.DEFINE_string('workdir', '/tmp/purl_bench', 'Run outputs.')
DENSE_CACHE = flags.DEFINE_string(
    'dense_cache', os.path.join(REPO, 'benchmarks', 'dense_cache'),
    'The benchmark\'s dense weights (a study refuses to train new ones).')


def prepare(study: str, seed: int, configure=None):
  """The net's config for `seed` and its context on the benchmark's dense net.

  Args:
    study: the study's name (its workdir under --workdir).
    seed: the seed.
    configure: called with the config before it is checked, to set what the
      study varies.

  Returns:
    (config, experiment.Context).

  Raises:
    ValueError: the dense net is not in --dense_cache: a study pairs with the
      benchmark's cells and must prune the net they pruned.
  """
  config = config_defaults.load(os.path.join(REPO, 'configs', f'{NET}.py'))
  config.seed = seed
  if configure:
    configure(config)
  search_loop.check_config(config)
  config.train.cache_dir = DENSE_CACHE.value
  workdir = os.path.join(WORKDIR.value, f'{study}_{NET}_seed{seed}')
  os.makedirs(workdir, exist_ok=True)
  ctx = experiment.prepare(config, workdir, verbose=1)
  if ctx.dense_train_s:
    raise ValueError(f'seed {seed}: no cached dense net in '
                     f'{DENSE_CACHE.value}; the study pairs with the '
                     'benchmark\'s cells and must prune the same net')
  return config, ctx


def benchmark_cell(cells, seed: int, target: float, method: str):
  """The benchmark's cell of `NET` (None when it has none)."""
  return next((r for r in cells if (r['net'], r['seed'], r['method']) ==
               (NET, seed, method) and abs(r['target'] - target) < 1e-9), None)


def paired(a, b) -> str:
  """'mean ± std' of the paired differences a - b, in points."""
  d = [100 * (x - y) for x, y in zip(a, b)]
  if not d:
    return ''
  # round() + 0.0: no '-0.00' for a difference that is zero.
  mean = round(statistics.mean(d), 2) + 0.0
  if len(d) < 2:
    return f'{mean:+.2f}'
  return f'{mean:+.2f} ± {statistics.stdev(d):.2f}'


def cells_in_order(payload):
  """(seed, target, cell) of a study's payload, keyed 'seed@target', by
  target and then seed."""
  keys = sorted(payload['cells'], key=lambda k: (float(k.split('@')[1]),
                                                  int(k.split('@')[0])))
  return [(int(k.split('@')[0]), float(k.split('@')[1]), payload['cells'][k])
          for k in keys]
