"""Episode files: the HDF5 writer and reader (docs/dataset-format.md).

The bottom layer of sonic-rl: it imports nothing from ``recorder`` or ``trainer``,
and holds what every layer shares (the exception tree in ``dataset.errors``, the
atomic file write in ``dataset.atomic``, the clean-up of what crashed writers
leave in ``dataset.leftovers``). Names are imported lazily, so importing
``dataset.errors`` alone (the embedded client does) does not load h5py.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "check": "dataset.catalog",
    "describe": "dataset.catalog",
    "find_episode_files": "dataset.catalog",
    "find_partial_files": "dataset.catalog",
    "summarize": "dataset.catalog",
    "DEFAULT_CHUNK_FRAMES": "dataset.episode",
    "SCHEMA_VERSION": "dataset.episode",
    "Actor": "dataset.episode",
    "EndReason": "dataset.episode",
    "EpisodeMeta": "dataset.episode",
    "EpisodeReader": "dataset.episode",
    "EpisodeWriter": "dataset.episode",
    "clean_stale": "dataset.leftovers",
    "find_leftovers": "dataset.leftovers",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dataset' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
