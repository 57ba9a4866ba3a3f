r"""The 16-layer residual net (fmnist_resnet) on Fashion-MNIST.

Run:
  purl-search --config=configs/fmnist_resnet.py --workdir=/tmp/fmnist_resnet

`:smoke`: 6k training images, 1 epoch each, a 6-episode search:
  purl-search --config=configs/fmnist_resnet.py:smoke --workdir=/tmp/x
"""

from purl_tf import config_defaults


def get_config(arg=None):
  """Returns the config; `arg` 'smoke' selects the small variant."""
  config = config_defaults.base_config()
  config.model.name = 'fmnist_resnet'
  # 16 layers: more steps per episode, so fewer batches per reward fine-tune.
  config.search.finetune_steps = 10
  config.search.eval_batches = 10
  config.search.episodes = 40
  if arg == 'smoke':
    config.data.train_size = 6000
    config.data.reward_size = 1000
    config.data.test_size = 2000
    config_defaults.shrink_for_smoke(config)
    config.search.finetune_steps = 2
    config.search.eval_batches = 2
    config.search.episodes = 3
    config.search.greedy_every = 3
  elif arg:
    raise ValueError(f'unknown variant {arg!r}; use :smoke or nothing')
  return config
