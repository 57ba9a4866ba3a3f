r"""MobileNet-V2 on ImageNet (tfds `imagenet2012` from a manual directory).

A starting point for a GPU server; the numbers below are budgets, not results.
Put ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar in MANUAL_DIR, then:

  purl-search --config=configs/mobilenet_v2_imagenet.py --workdir=/data/mnv2 \
      --config.data.manual_dir=MANUAL_DIR --config.data.tfds_data_dir=/data/tfds

Budgets: the dense net starts from ImageNet weights (`model.weights=imagenet`,
or `model.weights_path=` to a local file) and is not retrained (train.epochs
0). Each search step fine-tunes 100 batches of 256 and evaluates 10,000
reward images (40 batches) carved from the training set; 53 prunable layers (17 of them depthwise)
make an episode 53 such steps. The final fine-tune runs 30 epochs of SGD; depthwise layers are in the action space.
The learning rates are for a global batch of 256: scale them linearly with a
larger global batch (see README, "Running on GPUs and clusters").

`:smoke` runs the same code path on generated ImageNet-shaped data at 32x32
on CPU in a few minutes:
  purl-search --config=configs/mobilenet_v2_imagenet.py:smoke --workdir=/tmp/mnv2
"""

from purl_tf import config_defaults


def get_config(arg=None):
  """Returns the config; `arg` 'smoke' selects the small variant."""
  config = config_defaults.base_config()
  config.model.name = 'mobilenet_v2'
  config.model.weights = 'imagenet'
  config.data.name = 'imagenet2012'
  config.data.preprocess = 'mobilenet_v2'
  config.data.image_size = 224
  config.data.batch_size = 256
  config.data.reward_size = 10000
  config.data.num_classes = 1000
  config.train.epochs = 0
  config.finetune.epochs = 30
  config.finetune.optimizer = 'sgd'
  config.finetune.learning_rate = 0.005
  config.finetune.frequency = 100
  config.search.episodes = 60
  config.search.finetune_steps = 100
  config.search.subset_batches = 200
  config.search.eval_batches = 40
  config.search.learning_rate = 1e-4
  config.search.greedy_every = 10
  # Mask once when a layer's target is set: a top-k over every kernel at
  # every step would cost more than the step itself.
  config.env.frequency = 0
  config.agent.warmup_episodes = 5
  config.agent.epsilon_decay_episodes = 40
  if arg == 'smoke':
    _smoke(config)
  elif arg:
    raise ValueError(f'unknown variant {arg!r}; use :smoke or nothing')
  return config


def _smoke(config):
  config.model.weights = ''
  config.data.name = 'synthetic_imagenet'
  config.data.image_size = 32
  config.data.batch_size = 16
  config.data.reward_size = 32
  config.data.num_classes = 4
  config.data.synthetic_train = 96
  config.data.synthetic_test = 32
  config.data.synthetic_side = 40
  config_defaults.shrink_for_smoke(config)
  config.search.episodes = 2
  config.search.greedy_every = 2
  config.search.finetune_steps = 1
  config.search.subset_batches = 2
  config.search.eval_batches = 1
  config.agent.warmup_episodes = 1
  config.finetune.learning_rate = 1e-3
