"""The search's last stage: its finalists get the final fine-tune itself.

The re-ranking scores each candidate (the demonstrations and the best agent
episodes) with a short copy of the final fine-tune; on `fmnist_resnet` that
proxy cannot tell LAMP from ERK at 90% or 98%, where the two test 0.5-1.7 pt
apart one way on one seed and the other way on the next
(benchmarks/results/rerank_fmnist_resnet*.md). With `search.finalists = N`
the N best candidates each get the real final fine-tune
(`experiment.final_finetune`), the fine-tuned nets are scored on the whole
reward split (held out of every fine-tune, never the test split) by
accuracy or cross-entropy (`search.finalist_score`), and `rerank.choose`
picks among them with `search.finalist_z` and `search.rerank_incumbent`
(benchmarks/results/finalist_fmnist_resnet.md compares these rules). The
chosen net is
the result as it is: its fine-tune is not run again, so the stage costs N-1
final fine-tunes more than a search without it
(the Finalists table of benchmarks/results/fmnist.md).

Resume: each finalist's score is kept in the search state as it is
measured; a resumed search fine-tunes only the finalists it has not scored,
and the chosen one again if it was scored before the restart (the final
fine-tune is deterministic, so it gets the same net).
"""

import time
from typing import Dict, List, Optional

import numpy as np

from purl_tf import experiment, train
from purl_tf import rerank as rerank_lib


def pick_finalists(candidates: List[dict], reranked: Dict[str, float],
                   n: int) -> List[dict]:
  """The `n` candidates the final fine-tune scores, in episode order.

  Args:
    candidates: as `SearchState.candidates`.
    reranked: re-ranking accuracy by str(episode); candidates without one
      (the re-ranking was skipped because every candidate is a finalist)
      rank after those with one, demonstrations first, then by episode.
    n: how many (all candidates when there are no more than `n`).

  Returns:
    The finalists.
  """
  if n >= len(candidates):
    return sorted(candidates, key=lambda c: c['episode'])

  def rank(c):
    key = str(c['episode'])
    return (key in reranked, reranked.get(key, 0.0), c['demo'],
            -c['episode'])

  return sorted(sorted(candidates, key=rank, reverse=True)[:n],
                key=lambda c: c['episode'])


def choose(finalists: List[dict], state, search_config) -> dict:
  """The chosen finalist: `rerank.choose` on the scores of
  `search_config.finalist_score`, with its `finalist_z` and
  `rerank_incumbent`.

  Args:
    finalists: as `pick_finalists` returns them, every one scored in `state`.
    state: the `search_loop.SearchState` holding their scores.
    search_config: the config's `search` section.

  Returns:
    The chosen finalist (one of `finalists`).
  """
  if str(search_config.finalist_score) == 'loss':
    # rerank.choose takes the higher score: the loss enters negated.
    scores = {k: -v for k, v in state.finalists_loss.items()}
    vectors = {k: -rerank_lib.unpack_floats(v)
               for k, v in state.finalists_loss_examples.items()}
  else:
    scores = state.finalists
    vectors = {k: rerank_lib.unpack_correct(v)
               for k, v in state.finalists_correct.items()}
  return rerank_lib.choose(finalists, scores, vectors,
                           float(search_config.finalist_z),
                           str(search_config.rerank_incumbent))


def run(ctx: experiment.Context, loop, verbose: bool = True
        ) -> Optional[experiment.FineTuned]:
  """Fine-tunes the search's finalists and makes the chosen one its result.

  Args:
    ctx: the run's context (`experiment.prepare`), whose dense net the search
      pruned; the final fine-tune is its config's.
    loop: the `search_loop.SearchLoop` after `run()`.
    verbose: one line per finalist.

  Returns:
    The chosen finalist's fine-tuned net (for `experiment.finish`), or None
    when `search.finalists` is 0 or the search kept no candidates (then
    `loop.state.best` is the re-ranking's result, as before).
  """
  # The search's own config: a benchmark searches with a variant of the
  # net's config (ctx.config), and the finalists are part of the search.
  c = loop.config.search
  n = int(c.finalists)
  state = loop.state
  if not n or not state.candidates:
    return None
  finalists = pick_finalists(state.candidates, state.reranked, n)
  nets: Dict[str, experiment.FineTuned] = {}
  if verbose:
    print(f'{len(finalists)} finalists: each gets the final fine-tune and is '
          'scored on the reward split', flush=True)
  by_loss = str(c.finalist_score) == 'loss'
  for cand in finalists:
    key = str(cand['episode'])
    # A state from before the loss was kept lacks it: score such a finalist
    # again when the choice needs it.
    if key in state.finalists and (key in state.finalists_loss_examples or
                                   not by_loss):
      continue
    t0 = time.perf_counter()
    name = _name(cand, state)
    ft = experiment.final_finetune(ctx, loop.allocation_of(cand), method=name,
                                   target=loop.target, verbose=0)
    correct, loss = train.per_example(ft.model, ctx.splits.reward)
    nets[key] = ft
    state.finalists[key] = float(np.mean(correct)) if len(correct) else 0.0
    state.finalists_correct[key] = rerank_lib.pack_correct(correct)
    state.finalists_loss[key] = float(np.mean(loss)) if len(loss) else 0.0
    state.finalists_loss_examples[key] = rerank_lib.pack_floats(loss)
    state.finalists_s += time.perf_counter() - t0
    loop.save_state()
    if verbose:
      print(f'finalist {name}: after the final fine-tune, reward-split '
            f'accuracy {state.finalists[key]:.4f}, cross-entropy '
            f'{state.finalists_loss[key]:.4f} '
            f'({time.perf_counter() - t0:.0f}s)', flush=True)
  best = choose(finalists, state, c)
  key = str(best['episode'])
  state.best = {k: v for k, v in best.items() if k != 'demo'}
  state.best['finalist_accuracy'] = state.finalists[key]
  if key in state.finalists_loss:
    state.best['finalist_loss'] = state.finalists_loss[key]
  if key in state.reranked:
    state.best['ramp_accuracy'] = state.reranked[key]
  loop.save_state()
  if verbose:
    print(f'chosen: {_name(best, state)} (of {len(finalists)} finalists)',
          flush=True)
  chosen = nets.get(key)
  if chosen is None:
    # Scored before a restart: the fine-tune is deterministic, so running
    # it again gives the net that was scored.
    t0 = time.perf_counter()
    chosen = experiment.final_finetune(ctx, loop.allocation_of(best),
                                       method=_name(best, state),
                                       target=loop.target, verbose=0)
    state.finalists_s += time.perf_counter() - t0
    loop.save_state()
  return chosen


def _name(cand: dict, state) -> str:
  # Without episodes (search.episodes=0) a reference was never played.
  kind = 'demonstration' if state.episode else 'reference'
  return (f'{cand["reference"]} {kind}' if cand['demo'] else
          f'episode {cand["episode"] + 1}')
