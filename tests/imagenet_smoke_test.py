"""The ResNet-50 and MobileNet-V2 configs' :smoke variants, end to end.

Generated ImageNet-shaped data at 32x32 runs the same code path as ImageNet
(preprocessing, search over every conv/depthwise/dense layer, final stage).
Marked slow: `tools/test.sh --runslow` runs them (CI's fast suite does not).
"""

import json
import os
import subprocess

import pytest

from tests.conftest import REPO, subprocess_env, tool


@pytest.mark.slow  # about 10 and 5 minutes on 2 CPU cores
@pytest.mark.parametrize('net,layers,depthwise', [
    ('mobilenet_v2_imagenet', 53, 17),
    ('resnet50_imagenet', 54, 0),
])
def testImagenetSmokeSearch_PrunesEveryLayerKind(tmp_path, net, layers, depthwise):
  workdir = tmp_path / net
  result = subprocess.run(
      tool('purl-search') + [f'--config={os.path.join(REPO, "configs", net)}.py:smoke',
                             f'--workdir={workdir}'],
      capture_output=True, text=True, env=subprocess_env(), cwd=REPO, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(workdir / 'policy.json') as f:
    policy = json.load(f)
  with open(workdir / 'summary.json') as f:
    summary = json.load(f)
  assert len(policy['sparsity']) == layers
  dw = [n for n in policy['sparsity'] if n.endswith('depthwise')]
  assert len(dw) == depthwise
  reached = summary['per_layer_sparsity']
  for name, target in policy['sparsity'].items():
    assert reached[name] == pytest.approx(target, abs=0.01), name
  if depthwise:
    assert any(reached[n] > 0.05 for n in dw)
  assert abs(summary['reached_global_sparsity'] - 0.9) <= 0.005
