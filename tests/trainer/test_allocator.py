"""keep_freed_memory sets glibc's thresholds on Linux and leaves other platforms alone."""

from __future__ import annotations

import sys

import pytest

from trainer import allocator


def test_glibc_takes_the_thresholds() -> None:
    if sys.platform.startswith("linux") and "glibc" in __import__("platform").libc_ver()[0]:
        assert allocator.keep_freed_memory.__wrapped__() is True


def test_other_platforms_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator.sys, "platform", "darwin")
    assert allocator.keep_freed_memory.__wrapped__() is False
