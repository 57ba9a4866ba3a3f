"""Build -> search -> select: the one path every PuRL search takes.

`purl-search` (purl_tf/search_run.py), the Python API (`purl_tf.search`),
the benchmark and the tests all call `search()`: it builds the environment
and the loop, plays the episodes (`search_loop.SearchLoop`), runs the
selection stage (`selection.Selection`) and returns the chosen policy.
Callers check the config first (`search_loop.check_config`), before any
training.
"""

import dataclasses
from typing import Callable, Optional

from purl_tf import experiment, policy as policy_lib
from purl_tf import search_loop, selection


@dataclasses.dataclass
class SearchResult:
  """What a search returns."""
  policy: policy_lib.Policy
  loop: search_loop.SearchLoop  # its `state` and `records`
  # The chosen finalist's fine-tuned net (an `experiment.FineTuned`), when
  # the selection stage's final round ran: it is the result, as it is.
  finetuned: Optional[object] = None

  @property
  def state(self) -> search_loop.SearchState:
    return self.loop.state


def search(model, train_ds, reward_ds, config, *, strategy=None,
           lr_scale: float = 1.0, workdir: Optional[str] = None,
           resume: bool = False, finetune: Optional[Callable] = None,
           verbose: bool = True,
           on_episode: Optional[Callable[[dict], None]] = None
           ) -> SearchResult:
  """Searches a per-layer allocation of `config.prune.sparsity` for `model`.

  Args:
    model: the trained dense model (not changed: the environment wraps it).
    train_ds: batched training data for the short fine-tunes.
    reward_ds: batched held-out data for rewards and selection scores.
    config: a purl_tf config that `search_loop.check_config` accepted.
    strategy: the `tf.distribute` strategy (default: the current one).
    lr_scale: multiplies `search.learning_rate` (a scaled global batch).
    workdir: where the loop writes its state, logs and policy (None: none).
    resume: continue from the workdir's last checkpoint, if any.
    finetune: `(sparsity_map, name) -> experiment.FineTuned`, the final
      fine-tune; without it the selection stage has no final round.
    verbose: progress lines.
    on_episode: called with each finished episode's record.

  Returns:
    The `SearchResult`; with a workdir, policy.json and the greedy agent
    policy are written too.
  """
  env = search_loop.build_env(model, train_ds, reward_ds, config, strategy,
                              lr_scale)
  loop = search_loop.SearchLoop(env, config, workdir, verbose=verbose)
  if resume and loop.restore() and verbose:
    print(f'resuming at episode {loop.state.episode}', flush=True)
  loop.run(on_episode)
  finetuned = selection.Selection(loop, finetune, reward_ds,
                                  verbose=verbose).run()
  pol = loop.policy(model)
  if workdir:
    loop.save_policy(pol)
  return SearchResult(pol, loop, finetuned)


def search_in(ctx: experiment.Context, config, **kwargs) -> SearchResult:
  """`search` on an experiment context's dense net, splits and strategy,
  with the context's final fine-tune as the selection stage's final round.

  Args:
    ctx: from `experiment.prepare`.
    config: the search's config (a benchmark's variant may differ from
      `ctx.config`; its target is the one searched and fine-tuned for).
    **kwargs: `workdir`, `resume`, `verbose`, `on_episode` of `search`.
  """
  target = float(config.prune.sparsity)

  def finetune(sparsity_map, name):
    return experiment.final_finetune(ctx, sparsity_map, method=name,
                                     target=target, verbose=0)
  return search(ctx.dense, ctx.splits.search_train, ctx.splits.reward, config,
                strategy=ctx.strategy, lr_scale=ctx.lr_scale,
                finetune=finetune, **kwargs)
