"""The Q-learning losses as pure functions of tensors (no modules, no state).

The learner runs the networks and hands the Q-values here, so each target can be
checked on hand-computed tensors.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from trainer.config import Algo

__all__ = ["LossOutput", "bootstrap_values", "q_learning_loss"]


@dataclasses.dataclass(frozen=True)
class LossOutput:
    loss: torch.Tensor  # scalar to minimise
    td: torch.Tensor  # scalar Huber TD loss
    cql: torch.Tensor  # scalar CQL(H) term before its weight (0 unless algo is CQL)
    q_mean: torch.Tensor  # mean Q(s, a) of the batch actions
    target_mean: torch.Tensor


def bootstrap_values(
    algo: Algo, q_next_target: torch.Tensor, q_next_online: torch.Tensor | None
) -> torch.Tensor:
    """V(s') used by the TD target.

    DQN: max_a Q_target(s', a). Double DQN and CQL: the online network picks the
    action and the target network values it (van Hasselt et al. 2016), which is
    also d3rlpy's DiscreteCQL target.
    """
    if algo is Algo.DQN:
        return q_next_target.max(dim=1).values
    if q_next_online is None:
        raise ValueError(f"{algo.value} needs the online network's Q(s', .)")
    best = q_next_online.argmax(dim=1, keepdim=True)
    return q_next_target.gather(1, best).squeeze(1)


def q_learning_loss(
    q: torch.Tensor,
    q_next_target: torch.Tensor,
    q_next_online: torch.Tensor | None,
    actions: torch.Tensor,
    returns: torch.Tensor,
    discounts: torch.Tensor,
    *,
    algo: Algo,
    cql_alpha: float = 1.0,
    huber_delta: float = 1.0,
) -> LossOutput:
    """TD loss (Huber) plus, for CQL, alpha * mean(logsumexp_a Q(s, a) - Q(s, a_data)).

    ``q`` (B, A) carries gradients; the next-state values are treated as constants.
    ``returns`` are n-step returns and ``discounts`` gamma**k (0 at a terminal), so
    target = returns + discounts * V(s'). The CQL(H) term is Kumar et al. 2020,
    eq. 4, for discrete actions: it pushes down Q on actions the data did not take.
    Everything is computed in float32 even under autocast.
    """
    q = q.float()
    with torch.no_grad():
        v_next = bootstrap_values(
            algo, q_next_target.float(), None if q_next_online is None else q_next_online.float()
        )
        target = returns.float() + discounts.float() * v_next
    q_taken = q.gather(1, actions.long().unsqueeze(1)).squeeze(1)
    td = F.huber_loss(q_taken, target, delta=huber_delta)
    if algo is Algo.CQL:
        cql = (torch.logsumexp(q, dim=1) - q_taken).mean()
        loss = td + cql_alpha * cql
    else:
        cql = torch.zeros((), dtype=q.dtype, device=q.device)
        loss = td
    return LossOutput(
        loss=loss, td=td.detach(), cql=cql.detach(), q_mean=q_taken.detach().mean(), target_mean=target.mean()
    )
