"""A linear layer whose float32 CPU matrix products run in oneDNN instead of the BLAS library.

torch sends a float32 ``nn.Linear`` on CPU to its BLAS (MKL in the x86 wheels), which picks its
AVX-512 kernels only on Intel CPUs: on the AMD EPYC of this project's CI it ran the Nature CNN's
3136x512 layer at about half the speed of oneDNN, the library torch already uses for the
convolutions (one thread, float32: forward and backward of that layer 5.3 -> 3.1 ms at batch 32,
30 -> 14 ms at batch 256; docs/training.md "CPU speed"). ``OneDnnLinear`` is an ``nn.Linear``
(same parameters, same state dict) whose forward, input gradient and weight gradient go through
``torch.ops.mkldnn._linear_pointwise``, the oneDNN matmul that torch's own CPU compiler
(inductor) emits for linear layers. Anywhere else (CUDA, bf16 autocast, other dtypes, a torch
without that op) it is plain ``F.linear``.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["OneDnnLinear", "onednn_linear_available"]


def _matmul_t(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """x @ w.T (+ b) in oneDNN; x and w may be transposed views (oneDNN takes the strides)."""
    return torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")


@functools.cache
def onednn_linear_available() -> bool:
    """True when this torch has oneDNN's linear op and it agrees with ``F.linear`` (checked once)."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        gen = torch.Generator().manual_seed(0)
        x, w, b = (torch.randn(*s, generator=gen) for s in ((3, 5), (4, 5), (4,)))
        return bool(torch.allclose(_matmul_t(x, w, b), F.linear(x, w, b), atol=1e-5))
    except (AttributeError, RuntimeError):  # op missing from this build, or refusing these tensors
        return False


class _OneDnnLinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _matmul_t(x, weight, bias)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        # dL/dx = grad @ W; dL/dW = grad.T @ x; dL/db = sum over the batch.
        grad_x = _matmul_t(grad, weight.t(), None) if need_x else None
        grad_w = _matmul_t(grad.t(), x.t(), None) if need_w else None
        grad_b = grad.sum(0) if need_b and ctx.has_bias else None
        return grad_x, grad_w, grad_b


class OneDnnLinear(nn.Linear):
    """``nn.Linear`` with oneDNN matmuls for float32 (B, in) inputs on CPU (see the module docstring)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            x.device.type == "cpu"
            and x.dtype == torch.float32
            and x.dim() == 2
            and self.weight.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu")
            and onednn_linear_available()
        ):
            return _OneDnnLinearFunction.apply(x, self.weight, self.bias)
        return F.linear(x, self.weight, self.bias)
