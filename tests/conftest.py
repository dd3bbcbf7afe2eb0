"""Suite-wide: tests marked ``cuda`` skip cleanly, with the reason shown, where there is no CUDA GPU."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not any(item.get_closest_marker("cuda") for item in items):
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False here); "
                                   "benchmarks/gpu_check.sh runs these on one")  # fmt: skip
    for item in items:
        if item.get_closest_marker("cuda"):
            item.add_marker(skip)
