r"""ResNet-50 on ImageNet (tfds `imagenet2012` from a manual directory).

A starting point for a GPU server; the numbers below are budgets, not results.
Put ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar in MANUAL_DIR, then:

  purl-search --config=configs/resnet50_imagenet.py --workdir=/data/r50 \
      --config.data.manual_dir=MANUAL_DIR --config.data.tfds_data_dir=/data/tfds

Budgets: the dense net starts from ImageNet weights (`model.weights=imagenet`,
or `model.weights=` a local weights file) and is not retrained (train.epochs
0). Each search step fine-tunes 100 batches of 256 and evaluates 10,000
reward images (40 batches) carved from the training set; 54 prunable layers
make an episode 54 such steps. The final fine-tune runs 30 epochs of SGD.
The learning rates are for a global batch of 256: scale them linearly with a
larger global batch (see README, "Running on GPUs and clusters").

`:smoke` runs the same code path on generated ImageNet-shaped data at 32x32
on CPU in a few minutes:
  purl-search --config=configs/resnet50_imagenet.py:smoke --workdir=/tmp/r50
"""

from purl_tf import config_defaults


def get_config(arg=None):
  """Returns the config; `arg` 'smoke' selects the small variant."""
  config = config_defaults.imagenet_config('resnet50', finetune_lr=0.01)
  if arg == 'smoke':
  # One warm-up episode: the 54 layers of ResNet-50 make an episode
  # minutes long on 2 CPU cores even at 32x32.
    config_defaults.imagenet_smoke(config, episodes=1)
  elif arg:
    raise ValueError(f'unknown variant {arg!r}; use :smoke or nothing')
  return config
