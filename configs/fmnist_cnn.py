r"""The benchmark CNN on Fashion-MNIST.

Run:
  purl-prune --config=configs/fmnist_cnn.py --allocation=uniform \
      --sparsity=0.9 --workdir=/tmp/fmnist_prune
  purl-search --config=configs/fmnist_cnn.py --workdir=/tmp/fmnist_search

`:smoke` is a small local variant (6k training images, 1 epoch each, a
6-episode search) that finishes in about a minute on 2 CPU cores:
  purl-search --config=configs/fmnist_cnn.py:smoke --workdir=/tmp/x

`:paper` is the paper-faithful search (absolute sparsity grid, AMC's budget
clamp, target_penalty reward, best episode by return), kept as an ablation:
  purl-search --config=configs/fmnist_cnn.py:paper --workdir=/tmp/p
"""

from purl_tf import config_defaults


def get_config(arg=None):
  """Returns the config; `arg` 'smoke' selects the small variant, 'paper' the
  paper-faithful search (absolute grid, target_penalty, best by return)."""
  config = config_defaults.base_config()
  config.model.name = 'fmnist_cnn'
  # The dense net trains in about 30 s on 2 cores; the final fine-tune
  # alone costs about as much. 10 episodes (LAMP, ERK and global magnitude
  # played first) and a 90-batch short fine-tune of the references and the
  # best agent episode keep the search within about 2.5x the dense training.
  config.search.episodes = 10
  config.select.top_episodes = 1
  config.select.short_steps = 90
  if arg == 'smoke':
    config.data.train_size = 6000
    config.data.reward_size = 1000
    config.data.test_size = 2000
    config_defaults.shrink_for_smoke(config)
  elif arg == 'paper':
    config_defaults.paper_faithful(config)
  elif arg:
    raise ValueError(f'unknown variant {arg!r}; use :smoke, :paper or nothing')
  return config
