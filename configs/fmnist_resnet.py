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
  # Budgets sized so that the search plus the final fine-tune cost about 3x
  # the dense training on 2 CPU cores (dense: 3 epochs, ~150 s): 16 steps an
  # episode, so each reward fine-tunes 5 batches, re-estimates the
  # BatchNormalization statistics from 5 and evaluates 5 (640 images); an
  # episode takes ~19 s, so 14 episodes (3 of them demonstrations), then
  # ~6 re-ranked candidates of ~15 s each.
  config.finetune.epochs = 1
  config.search.episodes = 14
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
