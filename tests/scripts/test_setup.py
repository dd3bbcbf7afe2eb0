"""scripts/setup.py, the setup path without bash (Windows): which torch it asks pip for, where the venv's
Python is. The installs themselves are faked; `python scripts/setup.py` is what CI's setup runs."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "setup.py"


@pytest.fixture
def setup() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sonic_rl_setup", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake(monkeypatch: pytest.MonkeyPatch, setup: ModuleType, *, gpu: bool, cpu_wheel: bool) -> list[tuple[str, ...]]:
    asked: list[tuple[str, ...]] = []

    def pip(python: Path, *args: str, check: bool = True) -> bool:
        asked.append(args)
        return cpu_wheel or args[0] != setup.CPU_TORCH

    monkeypatch.setattr(setup, "pip", pip)
    monkeypatch.setattr(setup, "has_nvidia_gpu", lambda: gpu)
    monkeypatch.delenv("TORCH_SPEC", raising=False)
    # No torch in the (fake) venv yet.
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 1))
    return asked


def test_cpu_torch_without_a_gpu(monkeypatch: pytest.MonkeyPatch, setup: ModuleType) -> None:
    asked = _fake(monkeypatch, setup, gpu=False, cpu_wheel=True)
    setup.install_torch(Path("python"))
    assert asked == [("torch==2.13.0+cpu",)]


def test_pytorch_cpu_index_when_no_local_cpu_wheel(monkeypatch: pytest.MonkeyPatch, setup: ModuleType) -> None:
    asked = _fake(monkeypatch, setup, gpu=False, cpu_wheel=False)
    setup.install_torch(Path("python"))
    assert asked == [("torch==2.13.0+cpu",), ("torch", "--index-url", "https://download.pytorch.org/whl/cpu")]


def test_pypi_torch_with_a_gpu(monkeypatch: pytest.MonkeyPatch, setup: ModuleType) -> None:
    asked = _fake(monkeypatch, setup, gpu=True, cpu_wheel=True)
    setup.install_torch(Path("python"))
    assert asked == [("torch",)]


def test_venv_python_per_os(monkeypatch: pytest.MonkeyPatch, setup: ModuleType, tmp_path: Path) -> None:
    monkeypatch.setattr(setup.os, "name", "posix")
    assert setup.venv_python(tmp_path) == tmp_path / "bin" / "python"
    (tmp_path / "Scripts").mkdir()
    (tmp_path / "Scripts" / "python.exe").touch()
    assert setup.venv_python(tmp_path) == tmp_path / "Scripts" / "python.exe"
