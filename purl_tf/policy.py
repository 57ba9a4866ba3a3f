"""A per-layer sparsity policy and the model fingerprint it was found for."""

import dataclasses
import hashlib
import json
from typing import Dict, Optional

from purl_tf import io_utils, pruning
from purl_tf.compat import keras


def fingerprint(model: keras.Model) -> str:
  """A hash of the prunable layers' names, kinds and kernel shapes."""
  infos = pruning.prunable_layers(model)
  text = json.dumps([[i.name, i.kind, list(i.kernel_shape)] for i in infos])
  return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclasses.dataclass
class Policy:
  """Per-layer target sparsity for one architecture.

  Attributes:
    sparsity: `{layer_name: sparsity in [0, 1)}`.
    fingerprint: `fingerprint(model)` of the model it was found for.
    metrics: free-form numbers (reached sparsity, reward accuracy, episode).
  """
  sparsity: Dict[str, float]
  fingerprint: Optional[str] = None
  metrics: Dict[str, object] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if not isinstance(self.sparsity, dict) or not self.sparsity:
      raise ValueError('a policy needs a non-empty {layer_name: sparsity} map')
    for name, s in self.sparsity.items():
      if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0.0 <= s < 1.0:
        raise ValueError(f'policy sparsity {s!r} for layer {name!r} is '
                         'outside [0, 1)')
    self.sparsity = {str(k): float(v) for k, v in self.sparsity.items()}

  def check(self, model: keras.Model):
    """Raises ValueError naming the layers where policy and model differ."""
    names = [i.name for i in pruning.prunable_layers(model)]
    missing = sorted(set(names) - set(self.sparsity))
    extra = sorted(set(self.sparsity) - set(names))
    if missing or extra:
      raise ValueError(
          f'policy does not fit model {model.name!r}: layers in the policy '
          f'but not the model: {extra}; prunable layers of the model missing '
          f'from the policy: {missing}')
    if self.fingerprint and self.fingerprint != fingerprint(model):
      raise ValueError(
          f'policy was found for a model with fingerprint {self.fingerprint} '
          f'but this model has {fingerprint(model)} (same layer names, other '
          'kernel shapes)')

  def global_sparsity(self, model: keras.Model) -> float:
    """The global sparsity these per-layer targets give `model`."""
    return pruning.global_sparsity(pruning.prunable_layers(model), self.sparsity)

  def to_json(self) -> dict:
    return {'sparsity': self.sparsity, 'fingerprint': self.fingerprint,
            'metrics': self.metrics}

  @classmethod
  def from_json(cls, obj) -> 'Policy':
    if not isinstance(obj, dict) or 'sparsity' not in obj:
      raise ValueError('a policy file holds a JSON object with a "sparsity" '
                       'map of layer name to sparsity')
    return cls(obj['sparsity'], obj.get('fingerprint'), obj.get('metrics', {}))

  def save(self, path: str):
    io_utils.write_json_atomic(path, self.to_json())

  @classmethod
  def load(cls, path: str) -> 'Policy':
    """Reads a policy file; raises ValueError if it is missing or malformed."""
    try:
      with open(path) as f:
        obj = json.load(f)
    except FileNotFoundError as e:
      raise ValueError(f'policy file {path} does not exist') from e
    except json.JSONDecodeError as e:
      raise ValueError(f'policy file {path} is not valid JSON: {e}') from e
    return cls.from_json(obj)
