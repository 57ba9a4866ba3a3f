r"""The 16-layer residual net (fmnist_resnet) on Fashion-MNIST.

Run:
  purl-search --config=configs/fmnist_resnet.py --workdir=/tmp/fmnist_resnet

`:smoke`: 6k training images, 1 epoch each, LAMP and ERK as the finalists:
  purl-search --config=configs/fmnist_resnet.py:smoke --workdir=/tmp/x

`:paper`: the paper-faithful search (absolute grid; targets up to ~0.94):
  purl-search --config=configs/fmnist_resnet.py:paper --workdir=/tmp/p

The search with agent episodes: 7 episodes (LAMP, ERK and their blend
played first), the best agent episode a fourth finalist:
  purl-search --config=configs/fmnist_resnet.py --workdir=/tmp/a \
    --config.search.references=lamp,erk,lamp+erk \
    --config.search.episodes=7 --config.select.finalists=4
"""

from purl_tf import config_defaults


def get_config(arg=None):
  """Returns the config; `arg` 'smoke' selects the small variant, 'paper' the
  paper-faithful search (absolute grid, target_penalty, best by return)."""
  config = config_defaults.base_config()
  config.model.name = 'fmnist_resnet'
  config.finetune.epochs = 1
  # No agent episode: five allocations are the candidates, each gets the
  # final fine-tune (1 epoch, about a third of the dense training's 3), and
  # the chosen net is the result, as it is. At 98% the final fine-tune's own
  # noise is as large as the differences between LAMP, ERK and their blends,
  # and more candidates judged on held-out data pick better nets. LAMP holds
  # unless another's reward-split cross-entropy is lower by more than 2
  # paired standard errors: accuracy cannot tell apart nets a few tenths of
  # a point apart at 90%. About 2x the dense training.
  config.search.references = 'lamp,erk,lamp+erk,lamp+lamp+erk,lamp+erk+erk'
  config.search.episodes = 0
  config.select.finalists = 5
  config.select.score = 'loss'
  config.select.incumbent = 'first'
  # With episodes (:paper, or search.episodes > 0): 16 steps an episode,
  # each reward fine-tuning 5 batches, re-estimating the BatchNormalization
  # statistics from 5 and evaluating 5 (640 images); an episode costs about
  # a tenth of the dense training.
  config.select.top_episodes = 1
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
    config.search.references = 'lamp,erk'
    config.search.episodes = 0
    config.select.finalists = 2
  elif arg == 'paper':
    config_defaults.paper_faithful(config)
  elif arg:
    raise ValueError(f'unknown variant {arg!r}; use :smoke, :paper or nothing')
  return config
