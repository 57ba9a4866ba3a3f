"""`purl-prune`: prune a trained network to a global target with one allocation."""

import os
import time
from typing import Optional

from purl_tf import allocation, experiment, policy as policy_lib, tflite_export
from purl_tf import pruning, workdir_lock

ALLOCATIONS = allocation.METHODS + ('policy',)


def run_prune(config, workdir: str, *, allocation_name: str = 'uniform',
              sparsity: Optional[float] = None, policy_path: str = '',
              overwrite: bool = False, verbose: int = 2) -> dict:
  """Trains (or loads) the dense net, prunes it, fine-tunes and exports it.

  Args:
    config: a purl_tf config (see `configs/`).
    workdir: where `summary.json`, TensorBoard events and `export/` go.
    allocation_name: 'uniform', 'global_magnitude', 'sensitivity' or 'policy'.
    sparsity: the global target; defaults to `config.prune.sparsity`.
    policy_path: a `policy.json` (from `purl-search`) for allocation 'policy'.
    overwrite: replace a different run in `workdir`.
    verbose: Keras progress output.

  Returns:
    The summary dict also written to `workdir/summary.json`.

  Raises:
    ValueError: bad allocation, sparsity, policy or data (before any output
      beyond the workdir's config is written).
  """
  start = time.perf_counter()
  if allocation_name not in ALLOCATIONS:
    raise ValueError(f'unknown allocation {allocation_name!r}; one of '
                     f'{", ".join(ALLOCATIONS)}')
  target = float(config.prune.sparsity if sparsity is None else sparsity)
  if not 0.0 <= target < 1.0:
    raise ValueError(f'--sparsity {target} is outside [0, 1)')
  tflite_export.parse_formats(config.export.tflite)
  pruning.check_budget(str(config.prune.budget))
  pol = None
  if allocation_name == 'policy':
    if not policy_path:
      raise ValueError('--allocation=policy needs --policy=FILE')
    pol = policy_lib.Policy.load(policy_path)
  multi_worker = config.strategy.get('name') == 'multi_worker'
  with experiment.output_dir(config, workdir) as out, \
      workdir_lock.WorkdirLock(out) as lock:
    if out == workdir:
      experiment.check_workdir(workdir, config, kind='prune', overwrite=overwrite)
    ctx = experiment.prepare(config, out, verbose=verbose,
                             check_model=pol.check if pol else None)
    experiment.init_workdir(ctx, kind='prune', overwrite=overwrite, lock=lock)
    if pol is not None:
      sparsity_map = pol.sparsity
      if sparsity is None:
        # No --sparsity: the policy's own target, when it states a valid
        # one, else what its per-layer sparsities add up to.
        stated = pol.metrics.get('target_sparsity')
        target = (float(stated) if isinstance(stated, (int, float)) and
                  0.0 <= float(stated) < 1.0 else pruning.budget_sparsity(
                      pruning.prunable_layers(ctx.dense), pol.sparsity,
                      str(config.prune.budget)))
    else:
      sparsity_map = allocation.allocate(
          allocation_name, ctx.dense, target, reward_ds=ctx.splits.reward,
          eval_batches=int(config.search.eval_batches),
          calibration_ds=ctx.splits.train,
          bn_batches=int(config.search.bn_batches),
          budget=str(config.prune.budget))
    print(f'allocation {allocation_name}: '
          f'{ {k: round(v, 3) for k, v in sparsity_map.items()} }', flush=True)
    return experiment.finish(
        ctx, sparsity_map, target=target, method=allocation_name,
        verbose=verbose, started=start,
        backup_dir=os.path.join(workdir, 'backup') if multi_worker else None)
