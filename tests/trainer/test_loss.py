"""The loss on hand-computed tensors."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.config import Algo
from trainer.loss import bootstrap_values, q_learning_loss

Q = torch.tensor([[1.0, 2.0, 3.0], [0.0, -1.0, 0.5]])
Q_NEXT_TARGET = torch.tensor([[10.0, 20.0, 5.0], [4.0, 1.0, 2.0]])
Q_NEXT_ONLINE = torch.tensor([[0.0, 0.0, 9.0], [0.0, 7.0, 0.0]])
ACTIONS = torch.tensor([2, 0])
RETURNS = torch.tensor([1.0, -1.0])
DISCOUNTS = torch.tensor([0.5, 0.0])  # second transition ended on `terminated`


def test_dqn_bootstraps_from_the_target_max_and_double_from_the_online_argmax() -> None:
    assert bootstrap_values(Algo.DQN, Q_NEXT_TARGET, None).tolist() == [20.0, 4.0]
    assert bootstrap_values(Algo.DOUBLE, Q_NEXT_TARGET, Q_NEXT_ONLINE).tolist() == [5.0, 1.0]
    with pytest.raises(ValueError):
        bootstrap_values(Algo.DOUBLE, Q_NEXT_TARGET, None)


def _huber(x: float) -> float:
    return 0.5 * x * x if abs(x) <= 1 else abs(x) - 0.5


def test_dqn_loss_by_hand() -> None:
    out = q_learning_loss(Q, Q_NEXT_TARGET, None, ACTIONS, RETURNS, DISCOUNTS, algo=Algo.DQN)
    # targets: 1 + .5*20 = 11 and -1 (terminal); Q(s,a): 3 and 0.
    expected = (_huber(3 - 11) + _huber(0 - -1)) / 2
    assert out.loss.item() == pytest.approx(expected)
    assert out.td.item() == pytest.approx(expected)
    assert out.cql.item() == 0.0
    assert out.q_mean.item() == pytest.approx(1.5)
    assert out.target_mean.item() == pytest.approx(5.0)


def test_double_dqn_loss_by_hand() -> None:
    out = q_learning_loss(Q, Q_NEXT_TARGET, Q_NEXT_ONLINE, ACTIONS, RETURNS, DISCOUNTS, algo=Algo.DOUBLE)
    # targets: 1 + .5*5 = 3.5 and -1.
    assert out.loss.item() == pytest.approx((_huber(3 - 3.5) + _huber(1.0)) / 2)


def test_cql_adds_logsumexp_minus_data_q() -> None:
    out = q_learning_loss(
        Q, Q_NEXT_TARGET, Q_NEXT_ONLINE, ACTIONS, RETURNS, DISCOUNTS, algo=Algo.CQL, cql_alpha=0.5
    )
    lse0 = math.log(math.exp(1) + math.exp(2) + math.exp(3))
    lse1 = math.log(math.exp(0) + math.exp(-1) + math.exp(0.5))
    cql = ((lse0 - 3) + (lse1 - 0)) / 2
    td = (_huber(-0.5) + _huber(1.0)) / 2
    assert out.cql.item() == pytest.approx(cql)
    assert out.loss.item() == pytest.approx(td + 0.5 * cql)


def test_gradients_flow_only_through_q() -> None:
    q = Q.clone().requires_grad_(True)
    nt = Q_NEXT_TARGET.clone().requires_grad_(True)
    out = q_learning_loss(q, nt, Q_NEXT_ONLINE, ACTIONS, RETURNS, DISCOUNTS, algo=Algo.CQL)
    out.loss.backward()
    assert nt.grad is None
    assert q.grad is not None
    # d huber / dq at the taken action of row 0: (3 - 3.5) / 2 (mean over batch) plus the CQL part.
    soft0 = torch.softmax(Q[0], 0)
    assert q.grad[0, 2].item() == pytest.approx((-0.5 + (soft0[2].item() - 1)) / 2)
    assert q.grad[0, 0].item() == pytest.approx(soft0[0].item() / 2)
