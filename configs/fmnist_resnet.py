r"""The 16-layer residual net (fmnist_resnet) on Fashion-MNIST.

Run:
  purl-search --config=configs/fmnist_resnet.py --workdir=/tmp/fmnist_resnet

`:smoke`: 6k training images, 1 epoch each, a 6-episode search:
  purl-search --config=configs/fmnist_resnet.py:smoke --workdir=/tmp/x

`:paper`: the paper-faithful search (absolute grid; targets up to ~0.94):
  purl-search --config=configs/fmnist_resnet.py:paper --workdir=/tmp/p
"""

from purl_tf import config_defaults


def get_config(arg=None):
  """Returns the config; `arg` 'smoke' selects the small variant, 'paper' the
  paper-faithful search (absolute grid, target_penalty, best by return)."""
  config = config_defaults.base_config()
  config.model.name = 'fmnist_resnet'
  # Budgets sized so that the search plus the final fine-tune stay under 3x
  # the dense training on 2 CPU cores: 16 steps an episode, so each reward
  # fine-tunes 5 batches, re-estimates the BatchNormalization statistics
  # from 5 and evaluates 5 (640 images). An episode costs about a tenth of
  # the dense training (20-30 s where it takes 190-250 s), the final
  # fine-tune (1 epoch) about a third. Three demonstrations: LAMP, ERK and
  # their blend (global magnitude trails LAMP by 2 pt at 98%; the
  # sensitivity demonstration, `purl_sens`, did not pay for its scan). Then
  # 4 finalists (the demonstrations and the best agent episode) each get
  # the final fine-tune and the best on the reward split is the result
  # (purl_tf/finalists.py): the short re-ranking could not tell LAMP, ERK
  # and the blend apart (`purl_rerank`, the previous default, tied the best
  # baseline 0.04-0.34 pt below its mean at every target), the final
  # fine-tune picked the best of the three on test in 5 of 5 seeds at 98%
  # (benchmarks/results/fmnist.md). The choice: LAMP unless another
  # finalist's reward-split cross-entropy is lower by more than 2 paired
  # standard errors. By best accuracy (`purl_accuracy`, the previous
  # default) it lost to LAMP at 90% (-0.12 pt, 5 seeds), where the three
  # test within 0.1-0.6 pt and their reward-split accuracies 0.02-0.24 pt
  # apart; the cross-entropy's paired test held LAMP on all 5 seeds there
  # (a tie) and picked the better allocation where it led by 6-8 SE at
  # 95-98%, but held LAMP at 98% on a seed where the blend led by 0.4 SE and
  # tested 1.06 pt higher: +0.53 pt over ERK at 98% (a tie) where accuracy
  # won by +0.74 (benchmarks/results/finalist_fmnist_resnet.md). Two more
  # blends as candidates (`purl_weighted` in the README: lamp+lamp+erk,
  # lamp+erk+erk, five episodes, all five finalists) won at 98% (+0.69 pt
  # over ERK, 5 seeds) but cost 4.15x the dense training in its one
  # side-by-side run (at 90% and 95% it picked as this default on 5 of 5
  # seeds): not the default until its cost is measured again. Earlier
  # budgets, measured: `purl_14ep` (14 episodes, 3 agent episodes
  # re-ranked) and `purl_nosens` (9 episodes); in none of their cells did an
  # agent episode win.
  config.finetune.epochs = 1
  config.search.episodes = 7
  config.search.references = 'lamp,erk,lamp+erk'
  config.search.finalists = 4
  config.search.finalist_score = 'loss'
  config.search.rerank_incumbent = 'first'
  # Used only when 'sensitivity' is added to the references.
  config.search.sensitivity_grid = (0.0, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99)
  config.search.rerank = 1
  config.search.finetune_steps = 5
  config.search.eval_batches = 5
  config.search.bn_batches = 5
  if arg == 'smoke':
    config.data.train_size = 6000
    config.data.reward_size = 1000
    config.data.test_size = 2000
    config_defaults.shrink_for_smoke(config)
    config.search.finetune_steps = 2
    config.search.eval_batches = 2
    config.search.episodes = 3
    config.search.greedy_every = 3
  elif arg == 'paper':
    config_defaults.paper_faithful(config)
  elif arg:
    raise ValueError(f'unknown variant {arg!r}; use :smoke, :paper or nothing')
  return config
