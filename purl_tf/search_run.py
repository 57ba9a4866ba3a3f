"""`purl-search`: the PuRL search on a config's model and data, then the
final stage (fine-tune, test evaluation, strip, export).

Outputs in the workdir: those of `search_loop.SearchLoop` (episodes.jsonl,
search_state.json, checkpoints/, tensorboard/search, policy.json,
greedy_policy/) and of `experiment.finish` (summary.json, export/). With
`search.finalists` the search's finalists get the final fine-tune before the
choice (purl_tf/finalists.py), and the chosen net is exported as it is.
"""

import os
import time

from purl_tf import experiment, finalists, search_loop, workdir_lock


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
  multi_worker = config.strategy.get('name') == 'multi_worker'
  with experiment.output_dir(config, workdir) as out, \
      workdir_lock.WorkdirLock(out) as lock:
    if out == workdir:
      experiment.check_workdir(workdir, config, kind='search',
                               overwrite=overwrite, resume=resume)
    ctx = experiment.prepare(config, out, verbose=verbose, resume=resume)
    experiment.init_workdir(ctx, kind='search', overwrite=overwrite,
                            lock=lock)
    env = search_loop.build_env(ctx.dense, ctx.splits.search_train,
                                ctx.splits.reward, config, ctx.strategy,
                                ctx.lr_scale)
    loop = search_loop.SearchLoop(env, config, out, verbose=out == workdir)
    if resume and loop.restore():
      print(f'resuming at episode {loop.state.episode}', flush=True)
    state = loop.run()
    # With search.finalists the chosen net is already fine-tuned.
    finetuned = finalists.run(ctx, loop)
    pol = loop.policy(ctx.dense)
    loop.save_policy(pol)
    shown = {k: round(v, 3) for k, v in list(pol.sparsity.items())[:8]}
    more = (f' (+{len(pol.sparsity) - 8} more in policy.json)'
            if len(pol.sparsity) > 8 else '')
    ref = state.best.get('reference')
    episode = state.best['episode']
    # Demonstrations are the first episodes; saying so tells the user that
    # the search found nothing better than that free allocation.
    what = (f'the {ref} reference (no episode played)'
            if not state.episode else
            f'the {ref} demonstration (episode {episode + 1})'
            if episode < len(loop.demos) else
            f'episode {episode + 1}{f" (relative to {ref})" if ref else ""}')
    print(f'best policy: {what}: {shown}{more}', flush=True)
    return experiment.finish(
        ctx, pol.sparsity, target=loop.target, method='purl', verbose=verbose,
        started=start, finetuned=finetuned,
        backup_dir=os.path.join(workdir, 'backup') if multi_worker else None,
        extra={'search': {
            'episodes': state.episode, 'best_episode': state.best['episode'],
            'reference': state.best.get('reference', ''),
            'demonstrations': dict(state.demos),
            'search_s': state.search_s, 'env_steps': state.env_steps,
            'finalists': dict(state.finalists),
            'finalists_loss': dict(state.finalists_loss),
            'finalists_s': state.finalists_s,
            'policy': os.path.abspath(os.path.join(workdir, 'policy.json'))}})
