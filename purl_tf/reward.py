"""Per-step rewards of the PuRL search.

PuRL rewards the agent at *every* step (after each layer is pruned and the
network briefly fine-tuned), not only at the end of an episode as AMC does;
these dense rewards are why it needs few episodes. Each formula is a small
class with validated constructor arguments and `get_config/from_config`.

Both formulas read, at step t:
  accuracy          reward-split accuracy after the short fine-tune (acc_t);
  sparsity          s_t, the global sparsity of the network *as it stands*
                    after step t: pruned layers at their targets, the layers
                    not yet visited still dense. We use what the network is,
                    not a projection of what it might become, so the reward
                    never credits sparsity the agent has not yet chosen; the
                    sparsity penalty therefore shrinks as the episode goes and
                    rewards pruning the heavy layers early. With the budget
                    clamp the last step always reaches the target.
  dense_accuracy    reward-split accuracy of the dense network (A_dense);
  target_sparsity   the global target S*;
  previous_accuracy acc_{t-1} (A_dense at the first step).

`accuracy_delta` (the default, with the relative action space) rewards the
accuracy each step costs; its return is the final accuracy's drop, so the
episode with the best return is the one that leaves the best network, and
nothing credits pruning early layers harder than late ones. The paper-style
`target_penalty` pairs with the absolute action space, where an episode may
fall short of the budget.
"""

from typing import Dict, Type

NAMES = ('accuracy_delta', 'target_penalty', 'accuracy_sparsity')


class TargetPenaltyReward:
  """r_t = -(a * max(0, (A* - acc_t) / A*) + b * max(0, (S* - s_t) / S*)).

  A* = A_dense - allowed_drop. The agent loses reward only for falling short
  of a target, in units relative to that target, so both terms are on the same
  scale; the best return is 0.

  Args:
    accuracy_weight: a >= 0.
    sparsity_weight: b >= 0.
    allowed_drop: accuracy below the dense one that still counts as on target,
      in [0, 1).
  """

  def __init__(self, accuracy_weight: float = 1.0, sparsity_weight: float = 1.0,
               allowed_drop: float = 0.01):
    if accuracy_weight < 0 or sparsity_weight < 0:
      raise ValueError('reward weights must be >= 0, got '
                       f'{accuracy_weight}, {sparsity_weight}')
    if not 0.0 <= allowed_drop < 1.0:
      raise ValueError(f'allowed_drop {allowed_drop} is outside [0, 1)')
    self.accuracy_weight = float(accuracy_weight)
    self.sparsity_weight = float(sparsity_weight)
    self.allowed_drop = float(allowed_drop)

  def __call__(self, *, accuracy: float, sparsity: float, dense_accuracy: float,
               target_sparsity: float, previous_accuracy: float = 0.0) -> float:
    del previous_accuracy
    target_acc = max(dense_accuracy - self.allowed_drop, 1e-6)
    acc_term = max(0.0, (target_acc - accuracy) / target_acc)
    sp_term = (max(0.0, (target_sparsity - sparsity) / target_sparsity)
               if target_sparsity > 0 else 0.0)
    return -(self.accuracy_weight * acc_term + self.sparsity_weight * sp_term)

  def get_config(self) -> Dict[str, float]:
    return {'accuracy_weight': self.accuracy_weight,
            'sparsity_weight': self.sparsity_weight,
            'allowed_drop': self.allowed_drop}

  @classmethod
  def from_config(cls, config):
    return cls(**config)


class AccuracySparsityReward:
  """r_t = acc_t / A_dense + lam * s_t.

  A trade-off rather than a target: useful without a budget clamp, where the
  agent itself decides how far to prune.

  Args:
    sparsity_weight: lam >= 0.
  """

  def __init__(self, sparsity_weight: float = 1.0):
    if sparsity_weight < 0:
      raise ValueError(f'sparsity_weight must be >= 0, got {sparsity_weight}')
    self.sparsity_weight = float(sparsity_weight)

  def __call__(self, *, accuracy: float, sparsity: float, dense_accuracy: float,
               target_sparsity: float, previous_accuracy: float = 0.0) -> float:
    del target_sparsity, previous_accuracy
    return accuracy / max(dense_accuracy, 1e-6) + self.sparsity_weight * sparsity

  def get_config(self) -> Dict[str, float]:
    return {'sparsity_weight': self.sparsity_weight}

  @classmethod
  def from_config(cls, config):
    return cls(**config)


class AccuracyDeltaReward:
  """r_t = (acc_t - acc_{t-1}) / A_dense, so the return is acc_T / A_dense - 1.

  A reward at every step (what pruning layer t cost, after its short
  fine-tune) whose sum is the final network's relative accuracy: with the
  relative action space every episode meets the budget exactly, so only the
  accuracy is left to reward. With `agent.gamma=1` the Q-values estimate the
  final accuracy itself.
  """

  def __init__(self):
    pass

  def __call__(self, *, accuracy: float, sparsity: float, dense_accuracy: float,
               target_sparsity: float, previous_accuracy: float = 0.0) -> float:
    del sparsity, target_sparsity
    return (accuracy - previous_accuracy) / max(dense_accuracy, 1e-6)

  def get_config(self) -> Dict[str, float]:
    return {}

  @classmethod
  def from_config(cls, config):
    return cls(**config)


_CLASSES: Dict[str, Type] = {
    'accuracy_delta': AccuracyDeltaReward,
    'target_penalty': TargetPenaltyReward,
    'accuracy_sparsity': AccuracySparsityReward,
}


def from_config(config):
  """Builds a reward from a `reward` config: `name` plus that class's args."""
  name = config.get('name', 'accuracy_delta')
  if name not in _CLASSES:
    raise ValueError(f'unknown reward {name!r}; one of {NAMES}')
  cls = _CLASSES[name]
  if cls is AccuracyDeltaReward:
    return cls()
  if cls is TargetPenaltyReward:
    return cls(1.0, config.get('sparsity_weight', 1.0),
               config.get('allowed_drop', 0.01))
  # The weight of the sparsity term: accuracy_sparsity's lambda.
  return cls(config.get('sparsity_weight', 1.0))
