r"""The benchmark CNN on Fashion-MNIST.

Run:
  purl-prune --config=configs/fmnist_cnn.py --allocation=uniform \
      --sparsity=0.9 --workdir=/tmp/fmnist_prune
  purl-search --config=configs/fmnist_cnn.py --workdir=/tmp/fmnist_search

`:smoke` is a small local variant (6k training images, 1 epoch each) that
finishes in a couple of minutes on 2 CPU cores:
  purl-prune --config=configs/fmnist_cnn.py:smoke --workdir=/tmp/x
"""

from purl_tf import config_defaults


def get_config(arg=None):
  """Returns the config; `arg` 'smoke' selects the small variant."""
  config = config_defaults.base_config()
  config.model.name = 'fmnist_cnn'
  if arg == 'smoke':
    config.data.train_size = 6000
    config.data.reward_size = 1000
    config.data.test_size = 2000
    config.train.epochs = 1
    config.finetune.epochs = 1
    config.search.episodes = 6
    config.search.greedy_every = 3
    config.search.finetune_steps = 5
    config.search.subset_batches = 20
    config.agent.warmup_episodes = 2
    config.agent.epsilon_decay_episodes = 3
    config.agent.train_iterations = 5
    config.agent.batch_size = 8
  elif arg:
    raise ValueError(f'unknown variant {arg!r}; use :smoke or nothing')
  return config
