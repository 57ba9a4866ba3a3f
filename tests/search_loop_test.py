"""The search loop's prior episode (`search.prior`) on the benchmark CNN.

Seeded by conftest (numpy, Python, TensorFlow) and the config's seed.
"""

import numpy as np
import pytest

from purl_tf import allocation, models, search_loop, train
from purl_tf.compat import keras
from tests.conftest import tiny_search_config


def _config(prior):
  config = tiny_search_config()
  config.prune.sparsity = 0.8
  config.search.prior = prior
  config.search.episodes = 2
  config.search.greedy_every = 0
  return config


def _dense(splits):
  keras.utils.set_random_seed(0)
  model = models.fmnist_cnn()
  train.compile_model(model, 1e-3)
  train.fine_tune(model, splits.train, epochs=1, steps=4)
  return model


def testPriorEpisode_PlaysTheBaselineAllocationFirst(splits):
  dense = _dense(splits)
  config = _config('global_magnitude')
  env = search_loop.build_env(dense, splits.train, splits.reward, config)
  loop = search_loop.SearchLoop(env, config, verbose=False)
  loop.run()
  want = allocation.global_magnitude(dense, 0.8)
  nearest = [int(np.argmin(np.abs(env.grid - want[n]))) for n in loop.names]
  first, second = loop.records
  assert first['prior'] and not second['prior']
  assert first['actions'] == nearest
  # Its transitions are in the replay buffer with the second episode's.
  assert int(loop.learner.replay.num_frames()) == 2 * env.num_layers


def testNoPrior_FirstEpisodeIsTheAgents(splits):
  config = _config('')
  env = search_loop.build_env(_dense(splits), splits.train, splits.reward, config)
  loop = search_loop.SearchLoop(env, config, verbose=False)
  loop.run()
  assert not any(r['prior'] for r in loop.records)


def testUnknownPrior_RaisesValueError(splits):
  config = _config('magic')
  env = search_loop.build_env(_dense(splits), splits.train, splits.reward, config)
  with pytest.raises(ValueError, match='search.prior'):
    search_loop.SearchLoop(env, config, verbose=False)
