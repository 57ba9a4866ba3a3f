"""The README's Python API block runs as written and reaches its target.

The block is read from README.md (not copied here); a prelude gives it what
its comment says the user has: a trained model and batched datasets.
"""

import os
import re
import subprocess
import sys

from tests.conftest import REPO, subprocess_env

PRELUDE = '''
import warnings
import purl_tf
from purl_tf import config_defaults, data, models, train
# A layer short of its target at strip time fails the test.
warnings.simplefilter('error', purl_tf.pruning.BelowTargetWarning)
# The block calls search() with the default config; what is tested here is
# that the block's own calls reach the target, not the search's quality, so
# the default search is made small (CI time).
_base = config_defaults.base_config
def _small():
  c = _base()
  c.search.update(episodes=4, finetune_steps=2, eval_batches=2)
  c.select.update(top_episodes=1, short_steps=15)
  return c
config_defaults.base_config = _small
cfg = config_defaults.base_config().data
cfg.update(train_size=6000, reward_size=1000, test_size=1000, batch_size=64)
splits = data.get_splits(cfg, seed=0)
train_ds, val_ds = splits.train, splits.reward
model = models.fmnist_cnn()
train.compile_model(model, 1e-3)
model.fit(train_ds, epochs=1, verbose=0)
'''


def readme_python_block():
  with open(os.path.join(REPO, 'README.md')) as f:
    text = f.read()
  section = text.split('## Python API')[1]
  return re.search(r'```python\n(.*?)```', section, re.S).group(1)


def testReadmePythonBlock_RunsAsWrittenAndReachesItsTarget(tmp_path):
  code = PRELUDE + readme_python_block()
  result = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, env=subprocess_env(), cwd=tmp_path,
                          timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  reached = float(result.stdout.strip().splitlines()[-1])
  assert abs(reached - 0.9) <= 0.005, reached
  assert (tmp_path / 'serving' / 'my_model' / '1' / 'saved_model.pb').exists()
  assert (tmp_path / 'policy.json').exists()
  assert (tmp_path / 'pruned.keras').exists()
  assert (tmp_path / 'pruned.tflite').stat().st_size > 0
