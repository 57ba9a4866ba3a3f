"""Property tests (hypothesis) for the policy and config parsers, the
allocation functions and the budget clamp. Hypothesis is seeded by its own
database-free derandomised mode (`derandomize=True`), so runs repeat."""

import json
import math
import os

from hypothesis import HealthCheck, given, settings, strategies as st
import numpy as np
import pytest

import purl_tf
from purl_tf import allocation, config_defaults, env as env_lib, pruning
from purl_tf import search_loop
from purl_tf.compat import keras
from tests.conftest import REPO

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() |
    st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.text(max_size=5), inner, max_size=3), max_leaves=8)


@SETTINGS
@given(obj=json_values | st.dictionaries(
    st.sampled_from(['sparsity', 'fingerprint', 'metrics']),
    json_values | st.dictionaries(st.text(min_size=1, max_size=6),
                                  st.floats(-2, 2) | st.integers(-1, 2)),
    max_size=3))
def testPolicyParser_EitherValidOrValueError(obj):
  try:
    policy = purl_tf.Policy.from_json(obj)
  except ValueError:
    return
  assert policy.sparsity
  assert all(0.0 <= s < 1.0 for s in policy.sparsity.values())


@SETTINGS
@given(sparsity=st.dictionaries(st.text(min_size=1, max_size=8),
                                st.floats(0.0, 0.999), min_size=1, max_size=6))
def testPolicy_SaveLoadRoundTrip(sparsity, tmp_path):
  path = str(tmp_path / 'p.json')
  policy = purl_tf.Policy(sparsity, 'abc', {'episode': 3})
  policy.save(path)
  assert purl_tf.Policy.load(path) == policy


@pytest.mark.parametrize('name', sorted(os.listdir(os.path.join(REPO, 'configs'))))
def testConfigs_LoadAndRejectUnknownVariants(name):
  path = os.path.join(REPO, 'configs', name)
  for variant in ('', ':smoke') + ((':paper',) if name.startswith('fmnist')
                                   else ()):
    config = config_defaults.load(path + variant)
    assert set(config) == set(config_defaults.base_config())
    json.loads(config.to_json_best_effort())
    # What purl-search checks before any work (e.g. :paper plays episodes,
    # which fmnist_resnet's default does not).
    search_loop.check_config(config)

  @SETTINGS
  @given(variant=st.text(min_size=1, max_size=8).filter(
      lambda v: v not in ('smoke', 'paper') and ':' not in v))
  def unknown(variant):
    with pytest.raises(ValueError, match='unknown variant'):
      config_defaults.load(f'{path}:{variant}')
  unknown()


def _model(sizes):
  inputs = keras.Input((sizes[0],))
  x = inputs
  for k, n in enumerate(sizes[1:]):
    x = keras.layers.Dense(n, use_bias=False, name=f'd{k}')(x)
  return keras.Model(inputs, x)


MODELS = {sizes: _model(sizes) for sizes in [(3, 5, 2), (8, 1, 6, 4), (20, 10, 3)]}


@SETTINGS
@given(sizes=st.sampled_from(sorted(MODELS)), seed=st.integers(0, 2**16),
       target=st.floats(0.0, 0.99))
def testAllocations_ReachTargetAndStayBelowOne(sizes, seed, target):
  model = MODELS[sizes]
  rng = np.random.RandomState(seed)
  for layer in model.layers[1:]:
    layer.set_weights([rng.normal(size=w.shape) for w in layer.get_weights()])
  infos = pruning.prunable_layers(model)
  total = sum(i.params for i in infos)
  for method in allocation.FREE_METHODS:
    got = allocation.allocate(method, model, target)
    assert all(0.0 <= s < 1.0 for s in got.values()), (method, got)
    # Each layer keeps whole weights, and at least one: one weight of slack
    # per layer (plus rounding) on these tiny nets.
    slack = ((len(infos) + 1) / total if method in ('global_magnitude', 'lamp')
             else 1e-9)
    assert abs(pruning.global_sparsity(infos, got) - target) <= max(0.005, slack)
  found = {i.name: float(rng.uniform(0, 0.99)) for i in infos}
  fitted = allocation.fit_to_target(infos, found, target)
  assert all(0.0 <= s < 1.0 for s in fitted.values())
  if pruning.global_sparsity(infos, found) > 0:
    assert pruning.global_sparsity(infos, fitted) == pytest.approx(target, abs=1e-6)


@SETTINGS
@given(params=st.lists(st.integers(1, 100_000), min_size=1, max_size=8),
       actions=st.lists(st.integers(0, 19), min_size=8, max_size=8),
       target=st.floats(0.0, 0.95))
def testBudgetClamp_NeverEndsBelowAReachableTarget(params, actions, target):
  grid = env_lib.action_grid()
  chosen = []
  for t in range(len(params)):
    index = env_lib.budget_clamp(grid, actions[t], t, params, chosen, target)
    assert index >= actions[t]
    chosen.append(float(grid[index]))
  reached = sum(p * s for p, s in zip(params, chosen)) / sum(params)
  assert reached >= target - 1e-9
  assert max(chosen) < 1.0 and not math.isnan(reached)


@SETTINGS
@given(params=st.lists(st.integers(1, 100_000), min_size=1, max_size=8),
       densities=st.lists(st.floats(0.001, 1.0), min_size=8, max_size=8),
       scales=st.lists(st.sampled_from(list(env_lib.scale_grid())), min_size=8,
                       max_size=8))
def testRelativeKept_EveryEpisodeKeepsTheReferenceBudget(params, densities,
                                                         scales):
  ref = [p * d for p, d in zip(params, densities)]
  kept = []
  for t in range(len(params)):
    k = env_lib.relative_kept(t, scales[t], ref, params, kept, -1.0)
    assert ref[t] / 2 - 1e-6 * ref[t] <= k <= params[t] * (1 + 1e-9)
    kept.append(k)
  assert sum(kept) == pytest.approx(sum(ref), rel=1e-9)
  neutral = []
  for t in range(len(params)):
    neutral.append(env_lib.relative_kept(t, 0.0, ref, params, neutral, -1.0))
  assert neutral == pytest.approx(ref, rel=1e-9)
