"""The loss on hand-computed tensors."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.config import Algo
from trainer.loss import bootstrap_values, hl_gauss_probs, q_learning_loss

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


def test_hl_gauss_target_is_a_normalised_histogram_centred_on_the_target() -> None:
    support = torch.linspace(-4.5, 4.5, 10)  # bins of width 1 from -5 to 5
    probs = hl_gauss_probs(torch.tensor([0.0, 1.3, -2.2, 50.0]), support)
    assert torch.allclose(probs.sum(1), torch.ones(4))
    mean = probs @ support
    assert mean[:3].tolist() == pytest.approx([0.0, 1.3, -2.2], abs=0.02)
    assert mean[3].item() > 4.0  # clamped to the support's edge
    # sigma = 0.75 bins: the mass in the bin [0, 1] around a target of 0.5, by hand.
    s = math.sqrt(2) * 0.75
    by_hand = (math.erf(0.5 / s) - math.erf(-0.5 / s)) / (math.erf(4.5 / s) - math.erf(-5.5 / s))
    assert hl_gauss_probs(torch.tensor([0.5]), support)[0, 5].item() == pytest.approx(by_hand, rel=1e-5)


def test_hl_gauss_loss_is_the_cross_entropy_of_the_taken_actions_histogram() -> None:
    support = torch.linspace(-4.5, 4.5, 10)
    logits = torch.randn(2, 3, 10, generator=torch.Generator().manual_seed(0), requires_grad=True)
    q = torch.softmax(logits, -1) @ support
    out = q_learning_loss(q, Q_NEXT_TARGET / 10, None, ACTIONS, RETURNS, DISCOUNTS, algo=Algo.DQN,
                          logits=logits, support=support)  # fmt: skip
    target = torch.tensor([1 + 0.5 * 2.0, -1.0])
    p = hl_gauss_probs(target, support)
    taken = torch.log_softmax(logits[[0, 1], [2, 0]], -1)
    assert out.td.item() == pytest.approx(-(p * taken).sum(1).mean().item(), rel=1e-6)
    out.loss.backward()
    assert logits.grad is not None and logits.grad[0, 2].abs().sum() > 0 and logits.grad[0, 0].abs().sum() == 0


def test_cal_ql_lifts_the_pushed_down_q_to_the_monte_carlo_return() -> None:
    calibration = torch.tensor([2.5, -5.0])
    out = q_learning_loss(Q, Q_NEXT_TARGET, Q_NEXT_ONLINE, ACTIONS, RETURNS, DISCOUNTS, algo=Algo.CQL,
                          calibration=calibration)  # fmt: skip
    # Row 0: max(Q, 2.5) = [2.5, 2.5, 3]; row 1 is above -5 everywhere, so unchanged.
    lse0 = math.log(2 * math.exp(2.5) + math.exp(3))
    lse1 = math.log(math.exp(0) + math.exp(-1) + math.exp(0.5))
    assert out.cql.item() == pytest.approx(((lse0 - 3) + (lse1 - 0)) / 2)
    plain = q_learning_loss(Q, Q_NEXT_TARGET, Q_NEXT_ONLINE, ACTIONS, RETURNS, DISCOUNTS, algo=Algo.CQL)
    assert out.cql.item() > plain.cql.item()
