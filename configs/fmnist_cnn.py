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
  # The dense net trains in 27-31 s on 2 cores, so the 3x cost cap leaves
  # the search ~65 s beside the ~20 s final fine-tune. With the base budgets
  # it took 90-100 s (3.6-4.1x), half of it re-ranking six candidates for
  # 150 steps each; with 14 episodes and the demonstrations plus the best
  # other episode re-ranked over 90 steps, 2.4-3.2x (and the result was the
  # LAMP demonstration in all 9 seed x target cells). With the sensitivity
  # demonstration as well (its scan counted in the search), 1.6-3.4x side by
  # side, over 3x in 2 of 9 cells, and no better: LAMP in 8 cells, the
  # sensitivity demonstration (0.1 pt below LAMP) in one (`purl_sens`).
  # Here: 10 episodes (the default's 3 demonstrations: LAMP, ERK, global
  # magnitude) and the same re-ranking: LAMP returned in all 9 cells, 2.0-2.5x
  # the dense training measured side by side (benchmarks/results/
  # fmnist_side_by_side_noscan.md); the final fine-tune alone is about 1x.
  config.search.episodes = 10
  config.search.rerank = 1
  config.search.rerank_ramp_steps = 60
  config.search.rerank_hold_steps = 30
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
