"""The selection stage: which candidate allocation is the search's result.

The candidates are the reference allocations (`search.references`, each
played as an episode or, with `search.episodes=0`, unplayed) and the
`select.top_episodes` best agent episodes. Two rounds narrow them down, each
a closer copy of what the user's net will go through:

  short     each candidate gets a short fine-tune from the dense weights
            (`select.short_steps` batches, sparsity ramped over the first two
            thirds; `PruningEnv.ramp_accuracy`) and is scored per example on
            the reward split. Skipped when every candidate is a finalist.
  final     the `select.finalists` best of them each get the final fine-tune
            itself (the caller's `finetune`), scored on the reward split by
            accuracy or cross-entropy (`select.score`); the chosen net is the
            result as it is, so the round costs N-1 final fine-tunes.

The last round that runs chooses with `choose`: the incumbent reference
(`select.incumbent`) holds unless another candidate beats it by more than
`WIN_Z` standard errors of the paired difference on the reward examples,
the benchmark's own rule for a win. Without candidates (no references and
`select.top_episodes=0`, the paper's setting) the search's best episode by
`select.episode_score` is the result.

Resume: every score is kept in the search state as it is measured; a
resumed stage measures only what it lacks, and fine-tunes the chosen
finalist again if it was scored before the restart (the final fine-tune is
deterministic, so it gives the same net).
"""

import base64
import math
import time
from typing import Callable, Dict, List, Optional

import numpy as np

# Paired standard errors by which a candidate must beat the incumbent.
WIN_Z = 2.0
# select.episode_score: how episodes rank.
EPISODE_SCORES = ('final_accuracy', 'return')
# select.score: what the finalists are compared by on the reward split.
SCORES = ('accuracy', 'loss')
# select.incumbent: which reference the other candidates must beat.
INCUMBENTS = ('best', 'first')


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
  """How many standard errors the challenger's mean is above the
  incumbent's on the same examples (inf when they never disagree but the
  challenger is higher, 0 when equal)."""
  d = challenger.astype(float) - incumbent.astype(float)
  mean = float(d.mean())
  if mean == 0.0:
    return 0.0
  se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0
  return mean / se if se > 0 else math.copysign(math.inf, mean)


def _mean(values) -> float:
  return float(np.mean(values)) if len(values) else 0.0


def short_seed(seed: int, episode: int) -> int:
  """The batch-order seed of a candidate's short fine-tune: its own, so
  that a resumed stage scores it alike."""
  return int(seed) * 100_003 + 50_000 + int(episode)


def short_correct(env, sparsity_map: Dict[str, float], steps: int, seed: int,
                  episode: int) -> np.ndarray:
  """Which reward examples a candidate classifies right after its short
  fine-tune (`steps` batches: two thirds ramp, one third held)."""
  env.reseed(short_seed(seed, episode))
  ramp = steps * 2 // 3
  return np.asarray(env.ramp_accuracy(dict(sparsity_map), ramp, steps - ramp,
                                      per_example=True), bool)


def choose(candidates: List[dict], scores: Dict[str, float],
           vectors: Dict[str, np.ndarray], incumbent: str = 'best',
           z: Optional[float] = None) -> dict:
  """The incumbent reference, unless another candidate beats it by more
  than `z` standard errors of the paired difference (then the best such).

  A free allocation is what the user would otherwise get: a candidate that
  scores a few tenths of a point higher on one fine-tune is within that
  measurement's noise. `z=0` takes the best score; so does a round without
  references.

  Args:
    candidates: dicts with 'episode' and 'demo' (a reference's).
    scores: higher is better, by str(episode).
    vectors: per-example scores by str(episode) (a candidate without one
      competes by its score alone).
    incumbent: 'best': the best-scoring reference, which only agent
      episodes must beat by `z`; 'first': the first reference, which every
      other candidate, reference or not, must beat by `z`.
    z: the threshold, >= 0 (default `WIN_Z`).

  Raises:
    ValueError: an `incumbent` not in `INCUMBENTS`.
  """
  z = WIN_Z if z is None else float(z)
  if incumbent not in INCUMBENTS:
    raise ValueError(f'unknown incumbent {incumbent!r}; one of {INCUMBENTS}')

  def score(c):
    return (scores[str(c['episode'])], -c['episode'])

  best = max(candidates, key=score)
  refs = [c for c in candidates if c['demo']]
  if not refs or z <= 0 or (best['demo'] and incumbent == 'best'):
    return best
  held = (max(refs, key=score) if incumbent == 'best' else
          min(refs, key=lambda c: c['episode']))
  inc = vectors.get(str(held['episode']))
  winners = []
  for c in candidates:
    if c is held or score(c) <= score(held) or (c['demo'] and
                                                incumbent == 'best'):
      continue
    mine = vectors.get(str(c['episode']))
    if inc is None or mine is None or len(mine) != len(inc):
      winners.append(c)
    elif paired_z(mine, inc) > z:
      winners.append(c)
  return max(winners, key=score) if winners else held


def top(candidates: List[dict], short: Dict[str, float], n: int) -> List[dict]:
  """The `n` candidates the final round fine-tunes, in episode order: the
  best by their short score; those without one (the round was skipped)
  rank after, references first, then by episode."""
  if n >= len(candidates):
    return sorted(candidates, key=lambda c: c['episode'])

  def rank(c):
    key = str(c['episode'])
    return (key in short, short.get(key, 0.0), c['demo'], -c['episode'])

  return sorted(sorted(candidates, key=rank, reverse=True)[:n],
                key=lambda c: c['episode'])


def final_scores(state, score: str):
  """The final round's (scores, per-example vectors) by str(episode), higher
  better, as `choose` takes them: accuracy, or the cross-entropy negated
  (`score='loss'`)."""
  if score == 'loss':
    return ({k: -v for k, v in state.finalists_loss.items()},
            {k: -unpack_floats(v)
             for k, v in state.finalists_loss_examples.items()})
  return (dict(state.finalists),
          {k: unpack_correct(v) for k, v in state.finalists_correct.items()})


def name_of(candidate: dict, played: bool) -> str:
  """'lamp reference' or 'episode 7' (1-based), for progress and reports."""
  if candidate['demo']:
    return f'{candidate["reference"]} reference' + ('' if played else
                                                    ' (unplayed)')
  return f'episode {candidate["episode"] + 1}'


class Selection:
  """Runs the selection stage on a finished `search_loop.SearchLoop`.

  Args:
    loop: the loop after `run()`; its state receives every score and the
      result (`state.best`).
    finetune: `(sparsity_map, name) -> experiment.FineTuned`, the final
      fine-tune, for the final round (None: no final round, whatever
      `select.finalists` says; the short round chooses. `purl_tf.search()`
      refuses such a config instead).
    reward_ds: the reward split the finalists are scored on.
    verbose: one line per measured candidate.
  """

  def __init__(self, loop, finetune: Optional[Callable] = None,
               reward_ds=None, verbose: bool = True):
    self.loop = loop
    self.config = loop.config.select
    self.finetune = finetune
    self.reward_ds = reward_ds
    self.verbose = verbose

  def run(self):
    """Chooses the result; returns the chosen finalist's fine-tuned net, or
    None when no final round ran."""
    state = self.loop.state
    if not state.candidates:
      return None
    n = int(self.config.finalists) if self.finetune is not None else 0
    if len(state.candidates) == 1 and not n:
      self._set_best(state.candidates[0])  # nothing to choose
      return None
    if not n or len(state.candidates) > n:
      self._short_round()
      if not n:
        self._set_best(choose(state.candidates, state.short, {
            k: unpack_correct(v) for k, v in state.short_correct.items()},
                              str(self.config.incumbent)))
        return None
    return self._final_round(top(state.candidates, state.short, n))

  def _score_each(self, candidates, scored, measure, seconds: str, line):
    """Measures each candidate `scored(key)` says is not yet measured
    (`measure(candidate, key)` stores its scores in the state), adds the
    time to the state's `seconds` field, writes the state, and prints
    `line(candidate, key)`."""
    for cand in candidates:
      key = str(cand['episode'])
      if scored(key):
        continue
      t0 = time.perf_counter()
      measure(cand, key)
      self._saved(seconds, t0)
      if self.verbose:
        print(f'{line(cand, key)} ({time.perf_counter() - t0:.1f}s)',
              flush=True)

  def _short_round(self):
    loop, state = self.loop, self.loop.state
    steps = int(self.config.short_steps)
    if not steps:
      return

    def measure(cand, key):
      correct = short_correct(loop.env, loop.allocation_of(cand), steps,
                              loop.config.seed, cand['episode'])
      state.short[key] = _mean(correct)
      state.short_correct[key] = pack_correct(correct)
    self._score_each(
        state.candidates, lambda key: key in state.short, measure, 'search_s',
        lambda cand, key: (f'short fine-tune, '
                           f'{name_of(cand, bool(state.episode))}: '
                           f'reward-split accuracy {state.short[key]:.4f}'))

  def _final_round(self, finalists: List[dict]):
    # Imported here: the choice functions above need no TensorFlow.
    from purl_tf import train  # pylint: disable=g-import-not-at-top
    loop, state = self.loop, self.loop.state
    played = bool(state.episode)
    nets = {}
    if self.verbose:
      print(f'{len(finalists)} finalists: each gets the final fine-tune and is '
            'scored on the reward split', flush=True)
    by_loss = str(self.config.score) == 'loss'

    def measure(cand, key):
      ft = self.finetune(loop.allocation_of(cand), name_of(cand, played))
      correct, loss = train.per_example(ft.model, self.reward_ds)
      nets[key] = ft
      state.finalists[key] = _mean(correct)
      state.finalists_correct[key] = pack_correct(correct)
      state.finalists_loss[key] = _mean(loss)
      state.finalists_loss_examples[key] = pack_floats(loss)
    # A finalist scored before the loss was kept lacks it: scored again
    # when the choice needs it.
    self._score_each(
        finalists, lambda key: key in state.finalists and (
            key in state.finalists_loss_examples or not by_loss),
        measure, 'finalists_s',
        lambda cand, key: (f'finalist {name_of(cand, played)}: after the '
                           'final fine-tune, reward-split accuracy '
                           f'{state.finalists[key]:.4f}, cross-entropy '
                           f'{state.finalists_loss[key]:.4f}'))
    best = choose(finalists, *final_scores(state, str(self.config.score)),
                  str(self.config.incumbent))
    self._set_best(best)
    if self.verbose:
      print(f'chosen: {name_of(best, played)} (of {len(finalists)} finalists)',
            flush=True)
    chosen = nets.get(str(best['episode']))
    if chosen is None:
      # Scored before a restart: the fine-tune is deterministic, so running
      # it again gives the net that was scored.
      t0 = time.perf_counter()
      chosen = self.finetune(loop.allocation_of(best), name_of(best, played))
      self._saved('finalists_s', t0)
    return chosen

  def _saved(self, seconds: str, t0: float):
    """Adds the time since `t0` to the state's `seconds` field and writes
    the state, so that a resumed stage keeps what was measured."""
    state = self.loop.state
    setattr(state, seconds, getattr(state, seconds) + time.perf_counter() - t0)
    self.loop.save_state()

  def _set_best(self, cand: dict):
    state = self.loop.state
    key = str(cand['episode'])
    state.best = {k: v for k, v in cand.items() if k != 'demo'}
    for field, scores in (('short_accuracy', state.short),
                          ('finalist_accuracy', state.finalists),
                          ('finalist_loss', state.finalists_loss)):
      if key in scores:
        state.best[field] = scores[key]
    self.loop.save_state()  # search_state.json names the result
