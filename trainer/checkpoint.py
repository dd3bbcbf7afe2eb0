"""Checkpoints: written atomically, loaded with ``weights_only=True``.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so
``torch.load(..., weights_only=True)`` reads it without unpickling arbitrary
objects (PyTorch's safe loading; the default since 2.6). It is written to a
temporary name in the same folder, flushed to disk, then renamed: a crash leaves
either the previous checkpoint or the new one, never half of one (Dopamine's
checkpointer checks completeness for the same reason).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from dataset.atomic import atomic_write
from dataset.errors import ConfigError

__all__ = [
    "CHECKPOINT_FORMAT_VERSION",
    "REQUIRED_KEYS",
    "checkpoint_path",
    "latest_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
]

CHECKPOINT_FORMAT_VERSION = 1
REQUIRED_KEYS = frozenset(
    {"format_version", "model", "target", "optimizer", "updates", "config", "dataset_fingerprint", "rng"}
)
_NAME = re.compile(r"^ckpt-(\d{9})\.pt$")


def checkpoint_path(run_dir: Path, updates: int) -> Path:
    return run_dir / "checkpoints" / f"ckpt-{updates:09d}.pt"


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint with the highest update count in ``run_dir/checkpoints``, if any."""
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return max(found)[1] if found else None


def save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    missing = REQUIRED_KEYS - set(state)
    if missing:
        raise ValueError(f"checkpoint state lacks {sorted(missing)}")
    return atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such checkpoint; pass an existing --checkpoint file") from exc
    except Exception as exc:  # torch raises RuntimeError/UnpicklingError/EOFError for bad files
        raise ConfigError(f"{path}: not a readable sonic-train checkpoint ({type(exc).__name__})") from exc
    if not isinstance(state, dict) or REQUIRED_KEYS - set(state):
        raise ConfigError(f"{path}: not a sonic-train checkpoint (missing fields)")
    if state["format_version"] != CHECKPOINT_FORMAT_VERSION:
        raise ConfigError(
            f"{path}: checkpoint format {state['format_version']} is not {CHECKPOINT_FORMAT_VERSION}; "
            "use the sonic-rl version that wrote it"
        )
    return state
