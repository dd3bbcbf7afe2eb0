"""OneDnnLinear computes what nn.Linear computes, forward and backward, and falls back where it must."""

from __future__ import annotations

import platform

import pytest
import torch
import torch.nn.functional as F

from trainer import onednn_linear
from trainer.onednn_linear import OneDnnLinear, onednn_linear_available


def _grads(layer: torch.nn.Linear, x: torch.Tensor, grad: torch.Tensor) -> list[torch.Tensor]:
    x = x.clone().requires_grad_(True)
    layer.zero_grad(set_to_none=True)
    layer(x).backward(grad)
    assert x.grad is not None and layer.weight.grad is not None and layer.bias.grad is not None
    return [x.grad, layer.weight.grad, layer.bias.grad]


def test_x86_builds_have_the_op() -> None:
    # torch's x86 wheels are built with oneDNN; elsewhere the layer is plain F.linear.
    if platform.machine().lower() in ("x86_64", "amd64"):
        assert onednn_linear_available()


def test_forward_and_gradients_match_nn_linear() -> None:
    torch.manual_seed(0)
    fast = OneDnnLinear(300, 70)
    plain = torch.nn.Linear(300, 70)
    plain.load_state_dict(fast.state_dict())
    x, grad = torch.randn(33, 300), torch.randn(33, 70)
    assert torch.allclose(fast(x), plain(x), rtol=1e-5, atol=1e-5)
    for a, b in zip(_grads(fast, x, grad), _grads(plain, x, grad), strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)


def test_it_runs_in_onednn_on_cpu_float32_and_plain_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, ...]] = []
    real = onednn_linear._matmul_t

    def spy(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        calls.append(tuple(x.shape))
        return real(x, w, b)

    monkeypatch.setattr(onednn_linear, "_matmul_t", spy)
    layer = OneDnnLinear(8, 3)
    x = torch.randn(4, 8)
    layer(x)
    assert calls == ([(4, 8)] if onednn_linear_available() else [])
    calls.clear()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        layer(x)  # autocast's own bf16 linear
    layer.double()(x.double())
    assert calls == []


def test_a_torch_without_the_op_gets_plain_linear(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onednn_linear, "onednn_linear_available", lambda: False)
    monkeypatch.setattr(onednn_linear, "_matmul_t", None)  # would fail if called
    layer = OneDnnLinear(8, 3)
    x = torch.randn(4, 8)
    assert torch.equal(layer(x), F.linear(x, layer.weight, layer.bias))
