"""The Q-learning losses as pure functions of tensors (no modules, no state).

The learner runs the networks and hands the Q-values here, so each target can be
checked on hand-computed tensors.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F

from trainer.config import Algo

__all__ = ["LossOutput", "bootstrap_values", "hl_gauss_probs", "q_learning_loss"]


@dataclasses.dataclass(frozen=True)
class LossOutput:
    loss: torch.Tensor  # scalar to minimise
    td: torch.Tensor  # scalar TD loss (Huber, or the hl-gauss cross-entropy)
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


def hl_gauss_probs(target: torch.Tensor, support: torch.Tensor, sigma_ratio: float = 0.75) -> torch.Tensor:
    """HL-Gauss (Farebrother et al. 2024, sec. 3.1): the mass a Normal(target, sigma) puts in each bin.

    ``support`` holds the (evenly spaced) bin centres; sigma is ``sigma_ratio`` bin widths
    (their recommended 0.75). Targets outside the support are clamped to it and the mass is
    renormalised over the support, so every row sums to 1. Returns (B, bins).
    """
    width = support[1] - support[0]
    edges = torch.cat([support - width / 2, support[-1:] + width / 2])
    y = target.clamp(float(edges[0]), float(edges[-1])).unsqueeze(1)
    cdf = torch.erf((edges.unsqueeze(0) - y) / (math.sqrt(2.0) * sigma_ratio * width))
    mass = cdf[:, 1:] - cdf[:, :-1]
    return mass / (cdf[:, -1:] - cdf[:, :1])


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
    logits: torch.Tensor | None = None,
    support: torch.Tensor | None = None,
    calibration: torch.Tensor | None = None,
) -> LossOutput:
    """TD loss plus, for CQL, alpha * mean(logsumexp_a Q(s, a) - Q(s, a_data)).

    ``q`` (B, A) carries gradients; the next-state values are treated as constants.
    ``returns`` are n-step returns and ``discounts`` gamma**k (0 at a terminal), so
    target = returns + discounts * V(s'). The TD loss is Huber on the taken action's Q,
    or, given the histogram ``logits`` (B, A, bins) over ``support`` (``q`` is then their
    mean), the cross-entropy to ``hl_gauss_probs(target)`` (Farebrother et al. 2024; with CQL
    on the mean this is Scaled QL's pairing, Kumar et al. 2023). The CQL(H) term is Kumar et
    al. 2020, eq. 4, for discrete actions: it pushes down Q on actions the data did not take.
    ``calibration`` (B,) is Cal-QL's reference value (Nakamoto et al. 2023, eq. 5.1, with the
    data's Monte Carlo return-to-go): the pushed-down Q-values enter the logsumexp as
    max(Q, calibration), so CQL never pushes a Q below what the data already earned from s.
    Everything is computed in float32 even under autocast.
    """
    q = q.float()
    with torch.no_grad():
        v_next = bootstrap_values(
            algo, q_next_target.float(), None if q_next_online is None else q_next_online.float()
        )
        target = returns.float() + discounts.float() * v_next
    index = actions.long().unsqueeze(1)
    q_taken = q.gather(1, index).squeeze(1)
    if logits is None:
        td = F.huber_loss(q_taken, target, delta=huber_delta)
    else:
        if support is None:
            raise ValueError("a distributional loss needs the histogram's support")
        taken = logits.float().gather(1, index.unsqueeze(2).expand(-1, 1, logits.shape[2])).squeeze(1)
        td = -(hl_gauss_probs(target, support.float()) * F.log_softmax(taken, dim=1)).sum(dim=1).mean()
    if algo is Algo.CQL:
        pushed = q if calibration is None else torch.maximum(q, calibration.float().unsqueeze(1))
        cql = (torch.logsumexp(pushed, dim=1) - q_taken).mean()
        loss = td + cql_alpha * cql
    else:
        cql = torch.zeros((), dtype=q.dtype, device=q.device)
        loss = td
    return LossOutput(
        loss=loss, td=td.detach(), cql=cql.detach(), q_mean=q_taken.detach().mean(), target_mean=target.mean()
    )
