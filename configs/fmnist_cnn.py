r"""The benchmark CNN on Fashion-MNIST.

Run:
  purl-prune --config=configs/fmnist_cnn.py --allocation=uniform \
      --sparsity=0.9 --workdir=/tmp/fmnist_prune
  purl-search --config=configs/fmnist_cnn.py --workdir=/tmp/fmnist_search

`:smoke` is a small local variant (6k training images, 1 epoch each, a
6-episode search) that finishes in about a minute on 2 CPU cores:
  purl-search --config=configs/fmnist_cnn.py:smoke --workdir=/tmp/x
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
    config_defaults.shrink_for_smoke(config)
  elif arg:
    raise ValueError(f'unknown variant {arg!r}; use :smoke or nothing')
  return config
