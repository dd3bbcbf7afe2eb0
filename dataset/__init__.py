"""Episode files: the HDF5 writer and reader (docs/dataset-format.md)."""

from dataset.catalog import (
    check,
    describe,
    find_episode_files,
    find_partial_files,
    summarize,
)
from dataset.episode import (
    DEFAULT_CHUNK_FRAMES,
    SCHEMA_VERSION,
    Actor,
    EndReason,
    EpisodeMeta,
    EpisodeReader,
    EpisodeWriter,
)

__all__ = [
    "DEFAULT_CHUNK_FRAMES",
    "SCHEMA_VERSION",
    "Actor",
    "EndReason",
    "EpisodeMeta",
    "EpisodeReader",
    "EpisodeWriter",
    "check",
    "describe",
    "find_episode_files",
    "find_partial_files",
    "summarize",
]
