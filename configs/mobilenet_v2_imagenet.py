r"""MobileNet-V2 on ImageNet (tfds `imagenet2012` from a manual directory).

A starting point for a GPU server; the numbers below are budgets, not results.
Put ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar in MANUAL_DIR, then:

  purl-search --config=configs/mobilenet_v2_imagenet.py --workdir=/data/mnv2 \
      --config.data.manual_dir=MANUAL_DIR --config.data.tfds_data_dir=/data/tfds

Budgets: the dense net starts from ImageNet weights (`model.weights=imagenet`,
or `model.weights=` a local weights file) and is not retrained (train.epochs
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
  config = config_defaults.imagenet_config('mobilenet_v2', finetune_lr=0.005)
  if arg == 'smoke':
    config_defaults.imagenet_smoke(config, episodes=2)
  elif arg:
    raise ValueError(f'unknown variant {arg!r}; use :smoke or nothing')
  return config
