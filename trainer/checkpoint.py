"""Checkpoints: what a run continues from, written atomically, loaded with ``weights_only=True``.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so
``torch.load(..., weights_only=True)`` reads it without unpickling arbitrary
objects (PyTorch's safe loading; the default since 2.6). It is written to a
temporary name in the same folder, flushed to disk, then renamed: a crash leaves
either the previous checkpoint or the new one, never half of one (Dopamine's
checkpointer checks completeness for the same reason). ``--keep-checkpoints N``
deletes all but the newest N after each save (the one just written is the newest).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dataset.atomic import atomic_write
from dataset.errors import ConfigError
from trainer.config import TrainConfig
from trainer.frame_cache import DatasetInfo
from trainer.learner import Learner

__all__ = [
    "CHECKPOINT_FORMAT_VERSION",
    "REQUIRED_KEYS",
    "checkpoint_path",
    "latest_checkpoint",
    "load_checkpoint",
    "prune_checkpoints",
    "restore_rng",
    "restore_training_state",
    "rng_state",
    "run_checkpoints",
    "save_checkpoint",
    "save_run_checkpoint",
    "training_state",
]

CHECKPOINT_FORMAT_VERSION = 1
REQUIRED_KEYS = frozenset(
    {"format_version", "model", "target", "optimizer", "updates", "config", "dataset_fingerprint", "rng"}
)
_NAME = re.compile(r"^ckpt-(\d{9})\.pt$")


def checkpoint_path(run_dir: Path, updates: int) -> Path:
    return run_dir / "checkpoints" / f"ckpt-{updates:09d}.pt"


def run_checkpoints(run_dir: Path) -> list[Path]:
    """The run's checkpoints, oldest (lowest update count) first."""
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint with the highest update count in ``run_dir/checkpoints``, if any."""
    found = run_checkpoints(run_dir)
    return found[-1] if found else None


def prune_checkpoints(run_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` checkpoints (0: keep all); the latest always stays. Returns the deleted."""
    if keep < 1:
        return []
    old = run_checkpoints(run_dir)[:-keep]
    for path in old:
        path.unlink(missing_ok=True)
    return old


def save_run_checkpoint(run_dir: Path, state: dict[str, Any], *, keep: int = 0) -> Path:
    """Save ``state`` as the run's checkpoint of its update count, then keep only the newest ``keep`` (0: all)."""
    path = save_checkpoint(checkpoint_path(run_dir, int(state["updates"])), state)
    prune_checkpoints(run_dir, keep)
    return path


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


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """The sampler's generator state and torch's, as plain data (``restore_rng`` puts it back)."""
    # PCG64's state holds 128-bit ints; kept as decimal strings so the checkpoint is
    # plain data for weights_only loading on any torch version.
    st = rng.bit_generator.state
    return {
        "bit_generator": st["bit_generator"],
        "state": str(st["state"]["state"]),
        "inc": str(st["state"]["inc"]),
        "has_uint32": int(st["has_uint32"]),
        "uinteger": int(st["uinteger"]),
        "torch": torch.get_rng_state(),
    }


def training_state(
    learner: Learner, config: TrainConfig, info: DatasetInfo, rng: np.random.Generator
) -> dict[str, Any]:
    """Everything a run continues from: networks, optimizer, update count, config, dataset, RNGs."""
    return {
        "format_version": CHECKPOINT_FORMAT_VERSION,
        **learner.state_dict(),
        "config": config.to_dict(),
        "dataset_fingerprint": info.fingerprint,
        "rng": rng_state(rng),
        # What evaluation needs to play: the game, its action set and the profile's whole text, so a
        # checkpoint plays with no profile installed (trainer/run_profile.py).
        "dataset": {
            "game": info.game,
            "action_names": list(info.action_names),
            "frame_skip": info.frame_skip,
            "n_transitions": info.n_transitions,
            "profile_toml": info.profile_toml,
        },
    }


def restore_training_state(learner: Learner, rng: np.random.Generator, state: dict[str, Any]) -> None:
    """Put the learner and the sampler's and torch's RNGs back where ``state`` (``training_state``) left them."""
    learner.load_state_dict(state)
    restore_rng(rng, state["rng"])


def restore_rng(rng: np.random.Generator, saved: dict[str, Any]) -> None:
    """Put the sampler's generator and torch's RNG back where ``rng_state`` saw them."""
    rng.bit_generator.state = {
        "bit_generator": saved["bit_generator"],
        "state": {"state": int(saved["state"]), "inc": int(saved["inc"])},
        "has_uint32": int(saved["has_uint32"]),
        "uinteger": int(saved["uinteger"]),
    }
    torch.set_rng_state(saved["torch"])
