"""Who picks an episode's actions: the agent, or a measuring stick.

`agent.kind` names it. 'double_dqn' and 'dqn' are tf-agents learners (the
search proper, `purl_tf/agent.py`). The other two learn nothing; they search
the same action space for the same number of episodes, so that an agent can
be judged by what it finds beyond them at equal evaluations:

  random  every action drawn uniformly from the action grid.
  local   the actions of the best episode so far (a reference's, all
          neutral, until an agent episode beats it) with one move: one
          layer's action up by k grid steps and another's down by k
          (k in 1..`max_step`). In the relative action space a step up
          gives a layer more kept weights and the budget arithmetic takes
          them from the others, so every episode still meets the target
          exactly: a budget-preserving move of kept weights between
          layers, as EvoPress's mutations are.

Both draw from `np.random.RandomState(seed)` with the episode's seed, so a
resumed search plays the same actions.
"""

from typing import List, Sequence

import numpy as np

LEARNERS = ('double_dqn', 'dqn')
STICKS = ('random', 'local')
KINDS = LEARNERS + STICKS


def check_kind(kind: str):
  if kind not in KINDS:
    raise ValueError(f'agent.kind must be one of {KINDS}, got {kind!r}')


def random_actions(num_actions: int, num_layers: int,
                   rng: np.random.RandomState) -> List[int]:
  """One action per layer, each uniform over `num_actions`."""
  if num_actions < 1 or num_layers < 1:
    raise ValueError('need at least one action and one layer')
  return [int(a) for a in rng.randint(0, num_actions, num_layers)]


def local_move(incumbent: Sequence[int], num_actions: int,
               rng: np.random.RandomState, max_step: int = 2) -> List[int]:
  """`incumbent` with one layer's action raised and another's lowered.

  The two layers and the step k (1..`max_step`) are drawn until the move
  changes something (a layer at the grid's edge cannot move past it).

  Args:
    incumbent: the actions of the best episode so far.
    num_actions: size of the action grid.
    rng: the episode's random stream.
    max_step: the largest move, in grid steps.

  Returns:
    The new actions (a list of the same length).

  Raises:
    ValueError: fewer than two layers or two actions, or `max_step` < 1.
  """
  actions = [int(a) for a in incumbent]
  if len(actions) < 2 or num_actions < 2 or max_step < 1:
    raise ValueError('a local move needs two layers, two actions and '
                     'max_step >= 1')
  while True:
    up, down = (int(i) for i in rng.choice(len(actions), 2, replace=False))
    k = int(rng.randint(1, max_step + 1))
    moved = list(actions)
    moved[up] = min(num_actions - 1, moved[up] + k)
    moved[down] = max(0, moved[down] - k)
    if moved != actions:
      return moved
