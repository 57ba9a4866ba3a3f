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
  # from 5 and evaluates 5 (640 images). An episode costs about a sixth of
  # the dense training (18-20 s where it takes 120 s), a re-ranked candidate
  # (150 batches) a little more, the final fine-tune (1 epoch) two. Two
  # demonstrations, LAMP and ERK: global magnitude is left out, since here
  # it ties LAMP at 90-95% and trails it by 2 pt at 98%; the sensitivity
  # demonstration too: with it (`purl_sens`, the previous default, its scan
  # on the 7-value grid below costing about three episodes) the search
  # returned it in 2 of 15 cells (+0.15 and -1.20 pt against LAMP) and
  # ended below the best baseline's mean at every target. Earlier budgets,
  # measured: `purl_14ep` (14 episodes, 3 agent episodes re-ranked: 3.9x
  # where dense training took 120 s) and `purl_nosens` (9 episodes, lamp,
  # erk and global magnitude demonstrated, 1 agent episode re-ranked:
  # 2.3-2.9x), in benchmarks/results/fmnist.md; in none of their cells did
  # an agent episode win the re-ranking.
  config.finetune.epochs = 1
  config.search.episodes = 7
  config.search.references = 'lamp,erk'
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
