"""Finding, summarising, describing and checking episode files.

Backs ``sonic-rec ls`` (:func:`find_episode_files`, :func:`find_partial_files`,
:func:`summarize`), ``sonic-rec show`` (:func:`describe`) and
``sonic-rec verify`` (:func:`check`). Nothing here writes (removing stale
temporary files is ``dataset.leftovers``' job).
"""

from __future__ import annotations

import glob
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from dataset.compression import dataset_filters
from dataset.episode import (
    END_REASON_EXPLANATIONS,
    Actor,
    EpisodeReader,
    is_partial_name,
    undeclared_button_bits,
)
from dataset.errors import DatasetError
from dataset.escaping import printable
from dataset.leftovers import parse_temp_name

__all__ = [
    "EPISODE_SUFFIX",
    "check",
    "describe",
    "find_episode_files",
    "find_partial_files",
    "format_bytes",
    "summarize",
]

EPISODE_SUFFIX = ".h5"

_GLOB_CHARS = set("*?[")


def _expand(paths: Iterable[Path | str]) -> list[Path]:
    """Every file under ``paths`` (folders recursively, globs expanded)."""
    found: list[Path] = []
    for item in paths:
        text = str(item)
        if _GLOB_CHARS & set(text):
            matches = [Path(m) for m in glob.glob(text, recursive=True)]
            if not matches:
                raise DatasetError(f"no file matches {text!r}; check the pattern")
            for m in matches:
                found.extend(_expand([m]) if m.is_dir() else [m])
            continue
        path = Path(text)
        if path.is_dir():
            found.extend(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            found.append(path)
        else:
            raise DatasetError(f"{path} does not exist; pass episode files, folders or globs")
    return found


def _dedupe(paths: Iterable[Path]) -> list[Path]:
    seen: dict[Path, Path] = {}
    for p in paths:
        seen.setdefault(p.resolve(), p)
    return sorted(seen.values())


def find_episode_files(paths: Iterable[Path | str]) -> list[Path]:
    """Complete-looking episode files (``*.h5``) under files, folders (recursive) and globs.

    Writers' temporary files (``.NAME.h5.partial-PID@HOST``) are left out; list them with
    :func:`find_partial_files`. Raises DatasetError for a path that does not exist.
    A file named explicitly is kept whatever its suffix, except a partial one.
    """
    out = []
    for item in paths:
        explicit = Path(str(item))
        if explicit.is_file() and not _GLOB_CHARS & set(str(item)):
            if not is_partial_name(explicit):
                out.append(explicit)
            continue
        out.extend(p for p in _expand([item]) if p.suffix == EPISODE_SUFFIX and not p.name.startswith("."))
    return _dedupe(out)


def _is_partial_episode(path: Path) -> bool:
    parsed = parse_temp_name(path.name)
    return parsed is not None and parsed[0].endswith(EPISODE_SUFFIX)


def find_partial_files(paths: Iterable[Path | str]) -> list[Path]:
    """Unfinished episode files (``.NAME.h5.partial-PID@HOST``) under the same kind of paths.

    ``dataset.leftovers.find_leftovers`` also says whose they are and finds other temporary files.
    """
    return _dedupe(p for p in _expand(paths) if _is_partial_episode(p))


def summarize(path: Path) -> dict[str, object]:
    """One row of ``sonic-rec ls``. Raises DatasetError for a file that is not a complete episode."""
    path = Path(path)
    size = path.stat().st_size if path.exists() else 0
    with EpisodeReader(path) as ep:
        meta = ep.meta
        steps = ep.n_steps
        return {
            "file": str(path),
            "game": meta.game,
            "steps": steps,
            "return": ep.episode_return,
            "end_reason": ep.end_reason.label,
            "terminal": ep.end_reason.terminal,
            "mode": meta.mode,
            "policy": meta.policy_id,
            "frame_skip": meta.frame_skip,
            "frame_shape": "x".join(str(x) for x in ep.frame_shape),
            "bytes": size,
            "size": format_bytes(size),
            "bytes_per_step": size / steps if steps else float(size),
            "gaps": int(ep.gaps().shape[0]),
            "emulator": meta.emulator,
            "session": meta.session_id,
            "episode": meta.episode_index,
            "created": meta.created,
        }


def format_bytes(n: float) -> str:
    """``n`` bytes as ``512 B``, ``1.5 KiB``, ``12.0 MiB`` or ``3.2 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def describe(path: Path) -> str:
    """Human-readable metadata and one line per dataset, for ``sonic-rec show``."""
    path = Path(path)
    lines = [f"file: {path} ({format_bytes(path.stat().st_size)})"]
    with EpisodeReader(path) as ep:
        attrs = ep.attrs
        reason = ep.end_reason
        lines.append(
            f"end: {reason.label} ({END_REASON_EXPLANATIONS[reason]}; "
            f"{'terminated' if reason.terminal else 'truncated'})"
        )
        for key in sorted(attrs):
            if key == "profile_toml":
                continue
            lines.append(f"{key}: {printable(attrs[key])}")  # a client chose most of these strings
        profile = str(attrs.get("profile_toml", ""))
        lines.append(f"profile_toml: {len(profile.splitlines())} lines (shown below)")
        lines.append("datasets:")
        for name, ds in sorted(ep.datasets().items()):
            stored = ds.id.get_storage_size()
            filters = ",".join(f"{f.name}({f.filter_id}){list(f.values)}" for f in dataset_filters(ds)) or "none"
            ratio = f"{ds.nbytes / stored:.1f}x" if stored else "-"
            lines.append(
                f"  {name:<16} shape={ds.shape!s:<22} dtype={ds.dtype!s:<8} "
                f"chunks={ds.chunks!s:<22} filter={filters} stored={format_bytes(stored)} "
                f"ratio={ratio}"
            )
        if profile:
            lines.append("profile:")
            lines.extend(f"  {printable(line)}" for line in profile.splitlines())
    return "\n".join(lines)


def check(path: Path) -> list[str]:
    """Problems found in an episode file (empty list = sound), for ``sonic-rec verify``.

    Reads every chunk once (frames chunk by chunk, to bound memory).
    Never raises for a bad file: an unreadable one gives a one-item list.
    """
    path = Path(path)
    try:
        ep = EpisodeReader(path)
    except DatasetError as exc:
        return [str(exc)]
    problems: list[str] = []
    try:
        _check_open(ep, problems)
    except DatasetError as exc:
        problems.append(str(exc))
    finally:
        ep.close()
    return problems


def _check_open(ep: EpisodeReader, problems: list[str]) -> None:
    n = ep.n_steps
    datasets = ep.datasets()
    expected_rows = {
        "frames": n + 1, "ram": n + 1, "frame_counters": n + 1, "timestamps": n + 1,
        "buttons": n, "actions": n, "actors": n, "policy_versions": n, "rewards": n,
        "terminated": n, "truncated": n, "gaps": None,
    }  # fmt: skip
    for name, rows in expected_rows.items():
        if name not in datasets:
            problems.append(f"dataset {name!r} is missing")
        elif rows is not None and datasets[name].shape[0] != rows:
            problems.append(f"{name} has {datasets[name].shape[0]} rows, expected {rows} for {n} steps")
    if problems:
        return  # the per-step checks below index these arrays

    # Every chunk of every dataset must decode and match its checksum (schema 2): this is
    # where bit rot or a truncated copy shows. The checks below read the same arrays.
    for name in sorted(datasets):
        try:
            for _ in ep.iter_chunks(name):
                pass
        except DatasetError as exc:
            problems.append(str(exc).removeprefix(f"{ep.path.name}: "))
    if problems:
        return

    counters = ep.frame_counters().astype(np.int64)
    # gaps rows are (observation row, expected_frame, got_frame); the recorder may
    # record two for one row (a client's FRAMES_DROPPED notice, then the jump itself).
    gap_at: dict[int, list[tuple[int, int]]] = {}
    for row, expected, got in ep.gaps().tolist():
        if not 1 <= row <= n:
            problems.append(f"gap recorded at observation {row}, outside 1..{n}")
        gap_at.setdefault(int(row), []).append((int(expected), int(got)))
    skip = ep.meta.frame_skip
    deltas = np.diff(counters)
    for i, delta in enumerate(deltas):
        row = i + 1
        if row in gap_at:
            gots = [got for _, got in gap_at[row]]
            if counters[row] not in gots:
                problems.append(
                    f"step {row}: frame counter {counters[row]} but the recorded gap says {' or '.join(map(str, gots))}"
                )
            expecteds = [expected for expected, _ in gap_at[row]]
            if skip > 0 and counters[i] + skip not in expecteds:
                problems.append(
                    f"step {row}: recorded gap expects frame {expecteds[0]}, but the previous "
                    f"counter {counters[i]} + {skip} frames per step is {counters[i] + skip}"
                )
            continue
        if delta <= 0:
            problems.append(
                f"step {row}: frame counter went from {counters[i]} to {counters[row]} "
                "(not increasing) with no recorded gap"
            )
        elif skip > 0 and delta != skip:
            problems.append(
                f"step {row}: frame counter advanced {delta}, expected {skip} frames per step, with no recorded gap"
            )
        if len(problems) > 20:
            problems.append("... (more frame-counter problems not shown)")
            return

    ts = ep.timestamps()
    if np.any(np.diff(ts) < 0):
        problems.append(f"timestamps go backwards at step {int(np.argmax(np.diff(ts) < 0))}")

    term = ep.terminated()
    trunc = ep.truncated()
    both = np.flatnonzero(term & trunc)
    if both.size:
        problems.append(f"step {int(both[0])} is both terminated and truncated")
    ends = np.flatnonzero(term | trunc)
    if n and (ends.size != 1 or ends[0] != n - 1):
        problems.append(f"only the last step may end the episode; ending steps: {ends.tolist()}")
    if n:
        if ep.end_reason.terminal and not term[-1]:
            problems.append(f"end reason {ep.end_reason.label} is terminal but the last step is not terminated")
        if not ep.end_reason.terminal and not trunc[-1]:
            problems.append(f"end reason {ep.end_reason.label} is not terminal but the last step is not truncated")

    actors = ep.actors()
    bad = ~np.isin(actors, [a.value for a in Actor])
    if bad.any():
        problems.append(f"unknown actor code {int(actors[bad][0])} at step {int(np.argmax(bad))}")
    actions = ep.actions().astype(np.int64)
    n_actions = len(ep.meta.action_names)
    limit = n_actions if n_actions else np.iinfo(np.int16).max + 1
    bad = (actions < -1) | (actions >= limit)
    if bad.any():
        problems.append(
            f"action {int(actions[bad][0])} at step {int(np.argmax(bad))} is not "
            f"-1 or an index into the {n_actions} profile actions"
        )
    buttons = ep.buttons()
    if buttons.ndim != 2:
        problems.append(f"buttons has shape {buttons.shape}, expected (steps, frames per step)")
    elif n and (unused := undeclared_button_bits(ep.meta.button_names)) and np.any(buttons & unused):
        problems.append("button masks set bits beyond the profile's button_names")

    rewards = ep.rewards()
    total = float(rewards.astype(np.float64).sum())
    if not math.isclose(total, ep.episode_return, rel_tol=1e-9, abs_tol=1e-9):
        problems.append(f"return attribute {ep.episode_return} != sum of rewards {total}")
    if not np.all(np.isfinite(rewards)):
        problems.append("rewards contain NaN or infinity")
