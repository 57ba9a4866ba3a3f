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
  # from 5 and evaluates 5 (640 images). An episode costs about half a dense
  # epoch and a re-ranked candidate (150 batches) a little more, so 3x (9
  # dense epochs) holds 9 episodes (3 of them demonstrations), the
  # demonstrations and the best agent episode re-ranked, and the final
  # fine-tune (1 epoch). With 14 episodes and 3 agent episodes re-ranked
  # (`purl_14ep` in benchmarks/results/fmnist.md) it cost 1.8-2.9x where
  # dense training was slow and 3.9x where it took 120 s; in its 10 cells
  # no agent episode won the re-ranking.
  config.finetune.epochs = 1
  config.search.episodes = 9
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
