"""The re-ranking: a search's candidates scored again, and the choice.

After the last episode the search fine-tunes each candidate (the
demonstrations and the `search.rerank` best other episodes) for a short ramp
from the dense weights and evaluates it on the reward split, recording which
examples it classifies right (`correct_per_example`). `choose` then keeps the
incumbent demonstration unless another candidate beats it by more than
`search.rerank_z` standard errors of the paired difference on those examples
(`paired_z`): a free allocation is what the user would otherwise get, and one
short fine-tune cannot tell apart allocations that test within about 1 pt
at 98% on fmnist_resnet (benchmarks/results/rerank_fmnist_resnet_common.md).
"""

import base64
import math
from typing import Dict, List, Optional

import numpy as np

from purl_tf import env as env_lib
from purl_tf.compat import tf

def pack_correct(correct: np.ndarray) -> str:
  """A boolean vector as compact JSON-safe text (base64 of its bits)."""
  bits = np.packbits(np.asarray(correct, bool))
  return f'{len(correct)}:' + base64.b64encode(bits.tobytes()).decode('ascii')


def unpack_correct(text: str) -> np.ndarray:
  n, data = text.split(':', 1)
  bits = np.frombuffer(base64.b64decode(data), np.uint8)
  return np.unpackbits(bits)[:int(n)].astype(bool)


def pack_floats(values: np.ndarray) -> str:
  """A float vector as compact JSON-safe text (base64 of float16: three
  significant digits, all a per-example loss needs for a paired test)."""
  data = np.asarray(values, np.float16).tobytes()
  return f'{len(values)}:' + base64.b64encode(data).decode('ascii')


def unpack_floats(text: str) -> np.ndarray:
  n, data = text.split(':', 1)
  return np.frombuffer(base64.b64decode(data), np.float16)[:int(n)].astype(
      np.float64)


def paired_z(challenger: np.ndarray, incumbent: np.ndarray) -> float:
  """How many standard errors the challenger's accuracy is above the
  incumbent's on the same examples (inf when they never disagree but the
  challenger is higher, 0 when equal)."""
  d = challenger.astype(float) - incumbent.astype(float)
  mean = float(d.mean())
  if mean == 0.0:
    return 0.0
  se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0
  return mean / se if se > 0 else math.copysign(math.inf, mean)


# search.rerank_incumbent: which demonstration the others must beat.
INCUMBENTS = ('best', 'first')
# search.rerank_order: each candidate's own batch order, or one for all.
ORDERS = ('candidate', 'common')


def draw_seed(seed: int, episode: Optional[int], draw: int = 0) -> int:
  """The fine-tune batch order seed of one draw of the re-ranking.

  Args:
    seed: the config's seed.
    episode: the candidate's episode (`search.rerank_order='candidate'`: its
      own order, so a resumed search scores it alike), or None for the
      order every candidate shares (`'common'`).
    draw: which of the `search.rerank_draws` draws (0 is the first; with an
      episode, draw 0 is the seed every earlier search used).

  Returns:
    The seed.
  """
  base = int(seed) * 100_003 + 50_000
  if episode is None:
    return base - 1 - int(draw)
  return base + int(episode) + 1_000 * int(draw)


def correct_per_example(env: env_lib.PruningEnv,
                        sparsity_map: Dict[str, float], config, episode: int,
                        draws: Optional[List[int]] = None) -> np.ndarray:
  """Which reward examples a candidate classifies right after each draw of
  the re-ranking's short fine-tune, the draws' vectors end to end.

  With `search.rerank_order='common'` every candidate is fine-tuned on the
  same batches in the same order (common random numbers): the batch order
  moves the proxy by up to 1.5 pt at 95-98% on fmnist_resnet
  (benchmarks/results/rerank_fmnist_resnet.md), and a shared order takes
  the part of that every allocation shares out of their difference. Each of
  `search.rerank_draws` draws is another order; the paired test of
  `choose` then pairs example e of draw d across candidates.

  Args:
    env: the search's environment (reset after each draw's fine-tune).
    sparsity_map: the candidate's allocation.
    config: the purl_tf config (search.rerank_* keys).
    episode: the candidate's episode number.
    draws: which draws (default: the first `search.rerank_draws`), e.g. one
      at a time for benchmarks/rerank_study.py.

  Returns:
    A boolean vector, one draw's evaluated reward examples after another.
  """
  c = config.search
  common = str(c.rerank_order) == 'common'
  out = []
  for draw in (range(int(c.rerank_draws)) if draws is None else draws):
    order = draw_seed(config.seed, None if common else episode, draw)
    if common:
      # The shuffle's order also depends on TensorFlow's global seed, which
      # the last episode set: fixed here so that the order is the same for
      # every candidate and on a resumed search.
      tf.random.set_seed(order)
    env.reseed(order)
    out.append(np.asarray(env.ramp_accuracy(
        dict(sparsity_map), int(c.rerank_ramp_steps),
        int(c.rerank_hold_steps), per_example=True), bool))
  return np.concatenate(out) if out else np.zeros(0, bool)


def choose(candidates: List[dict], accuracy: Dict[str, float],
           correct: Dict[str, np.ndarray], z: float,
           incumbent: str = 'best') -> dict:
  """The re-ranking's result: the incumbent demonstration, unless another
  candidate beats it by more than `z` standard errors of the paired
  difference on the reward examples (then the best such candidate).

  A free allocation is what the user would otherwise get: an episode that
  scores a few tenths of a point higher on one short fine-tune and one
  evaluation is within that measurement's noise (on fmnist_cnn at 90%,
  +0.3 pt on the reward split tested 0.56 pt below LAMP). `z=0` takes the
  best score. Without demonstrations, the best score.

  Args:
    candidates: as `SearchState.candidates` (with 'episode' and 'demo').
    accuracy: re-ranking accuracy by str(episode).
    correct: per-example correctness by str(episode) (may lack some: those
      compete by accuracy alone, as with `z=0`).
    z: the threshold, >= 0.
    incumbent: 'best': the best-scoring demonstration, which only agent
      episodes must beat by `z`; 'first': the first demonstration played
      (the first of `search.references`), which every other candidate,
      demonstration or not, must beat by `z`.

  Raises:
    ValueError: an `incumbent` not in `INCUMBENTS`.
  """
  if incumbent not in INCUMBENTS:
    raise ValueError(f'unknown re-ranking incumbent {incumbent!r}; one of '
                     f'{INCUMBENTS}')

  def acc(c):
    return (accuracy[str(c['episode'])], -c['episode'])

  best = max(candidates, key=acc)
  demos = [c for c in candidates if c['demo']]
  if not demos or z <= 0 or (best['demo'] and incumbent == 'best'):
    return best
  held = (max(demos, key=acc) if incumbent == 'best' else
          min(demos, key=lambda c: c['episode']))
  inc = correct.get(str(held['episode']))
  winners = []
  for c in candidates:
    if c is held or acc(c) <= acc(held) or (c['demo'] and
                                            incumbent == 'best'):
      continue
    mine = correct.get(str(c['episode']))
    if inc is None or mine is None or len(mine) != len(inc):
      winners.append(c)
    elif paired_z(mine, inc) > z:
      winners.append(c)
  return max(winners, key=acc) if winners else held
