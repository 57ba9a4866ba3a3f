"""`purl-search`: the PuRL search on a config's model and data, then the
final stage (fine-tune, test evaluation, strip, export).

Outputs in the workdir: those of `search_loop.SearchLoop` (episodes.jsonl,
search_state.json, checkpoints/, tensorboard/search, policy.json,
greedy_policy/) and of `experiment.finish` (summary.json, export/). With
`select.finalists` the chosen finalist's net, already fine-tuned by the
selection stage, is exported as it is.
"""

import os
import time

from purl_tf import experiment, pipeline, search_loop, selection
from purl_tf import workdir_lock


def run_search(config, workdir: str, *, resume: bool = False,
               overwrite: bool = False, verbose: int = 2) -> dict:
  """Runs the PuRL search and the final stage; returns the summary dict.

  Args:
    config: a purl_tf config.
    workdir: output directory.
    resume: continue the run in `workdir` from its last checkpoint.
    overwrite: replace a different run in `workdir`.
    verbose: Keras progress output of the dense training and final fine-tune.

  Raises:
    ValueError: bad config, data or workdir.
  """
  start = time.perf_counter()
  search_loop.check_config(config)
  target = float(config.prune.sparsity)
  multi_worker = config.strategy.get('name') == 'multi_worker'
  with experiment.output_dir(config, workdir) as out, \
      workdir_lock.WorkdirLock(out) as lock:
    if out == workdir:
      experiment.check_workdir(workdir, config, kind='search',
                               overwrite=overwrite, resume=resume)
    ctx = experiment.prepare(config, out, verbose=verbose, resume=resume)
    experiment.init_workdir(ctx, kind='search', overwrite=overwrite,
                            lock=lock)
    result = pipeline.search_in(ctx, config, workdir=out, resume=resume,
                                verbose=out == workdir)
    pol, state = result.policy, result.state
    shown = {k: round(v, 3) for k, v in list(pol.sparsity.items())[:8]}
    more = (f' (+{len(pol.sparsity) - 8} more in policy.json)'
            if len(pol.sparsity) > 8 else '')
    # A reference as the result tells the user that the search found
    # nothing better than that free allocation.
    print(f'result: {describe(state)}: {shown}{more}', flush=True)
    return experiment.finish(
        ctx, pol.sparsity, target=target, method='purl', verbose=verbose,
        started=start, finetuned=result.finetuned,
        backup_dir=os.path.join(workdir, 'backup') if multi_worker else None,
        extra={'search': {
            'episodes': state.episode, 'best_episode': state.best['episode'],
            'reference': state.best.get('reference', ''),
            'chosen': describe(state),
            'references': dict(state.demos),
            'search_s': state.search_s, 'env_steps': state.env_steps,
            'finalists': dict(state.finalists),
            'finalists_loss': dict(state.finalists_loss),
            'finalists_s': state.finalists_s,
            'policy': os.path.abspath(os.path.join(workdir, 'policy.json'))}})


def describe(state) -> str:
  """What the search returned: 'the lamp reference', or 'episode 7
  (relative to lamp)'."""
  best = state.best
  ref = best.get('reference')
  if best['episode'] < len(state.demos) or not state.episode:
    return f'the {selection.name_of(dict(best, demo=True), bool(state.episode))}'
  return f'episode {best["episode"] + 1}{f" (relative to {ref})" if ref else ""}'
