"""Episode files as a Minari dataset, the offline-RL dataset standard (Farama's ``minari``).

Backs ``sonic-rec export minari``. The episodes (one game, one action set) become one
dataset that ``minari.load_dataset(NAME)`` opens, so anything that reads Minari
(torchrl's ``MinariExperienceReplay``, for one) can train on them. What goes where:

* ``observations``: ``ram`` (default; ``Box(0, 255, (R,), uint8)``, the console's
  full main RAM, the game's state), ``frames`` (``Box(0, 255, (H, W, 3), uint8)``)
  or ``both`` (``Dict(frame=..., ram=...)``). N+1 per episode, as in our files.
* ``actions``: the discrete action index (``Discrete(len(action_names))``). Human
  steps, recorded as -1, get the action their buttons stand for by the project's
  one rule (``recorder.action_set.ActionSet.resolve``); this bottom layer takes that
  rule as a callable (:data:`ActionResolver`) instead of importing it.
* ``rewards``, ``terminations`` and ``truncations``: as recorded, kept apart.
* ``infos`` (N+1 rows, Gymnasium's convention: row i comes with observation i, so
  row 0 is the reset, before any step): ``frame_counter``, ``timestamp``,
  ``buttons`` (the step's per-frame masks; 0 at row 0), ``actor``,
  ``recorded_action`` and ``policy_version`` (-1 at row 0).
* dataset metadata: game, frame skip, action and button names, profile, the
  observation choice, human/mapped step counts; per-episode metadata: the source
  file, session, end reason, policy, emulator.

Size: Minari's HDF5 storage writes arrays uncompressed (only images can be JPEG'd,
lossily), while our files compress ~350x. Per step on the Genesis: ``ram`` 64 KiB,
``frames`` 210 KiB (224x320x3), ``both`` 274 KiB, so an hour of play at 15 steps/s
is about 3.4 GiB, 11.3 GiB or 14.8 GiB. RAM is the default: lossless, the full
game state, a third of the frames' size. The export estimates the size first and
refuses when the disk lacks room.

Minari 0.5 writes episodes through ``MinariStorage.update_episodes``, which
appends to an episode whose id already exists; the export feeds it one stored
chunk of steps at a time, so memory stays bounded however long an episode. It
writes into a hidden staging root next to the target and moves the finished
dataset into place, so an interrupted export never leaves a half dataset under
its name (Minari would then refuse the name).
"""

from __future__ import annotations

import contextlib
import enum
import os
import shutil
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dataset.atomic import fsync_dir
from dataset.episode import EpisodeMeta, EpisodeReader
from dataset.errors import DatasetError, UsageError

__all__ = [
    "MINARI_PIP",
    "ActionResolver",
    "MinariExport",
    "ObservationKind",
    "export_minari",
    "import_minari",
]

#: What to run when the minari package is missing (it is an optional extra of sonic-rl).
MINARI_PIP = 'pip install "minari[hdf5]>=0.5.4,<0.6"'

#: (episode metadata, recorded actions (N,), per-frame buttons (N, K)) -> (actions with
#: human steps (-1) filled, mapped, human): ``recorder.action_set.ActionSet.resolve``.
ActionResolver = Callable[[EpisodeMeta, np.ndarray, np.ndarray], tuple[np.ndarray, int, int]]


class ObservationKind(enum.StrEnum):
    RAM = "ram"
    FRAMES = "frames"
    BOTH = "both"


@dataclass(frozen=True)
class MinariExport:
    """What an export wrote."""

    dataset_id: str
    path: Path
    episodes: int
    steps: int
    bytes: int
    human_steps: int
    mapped_steps: int
    #: Episode files left out because they have no step (Minari needs at least one).
    skipped: tuple[Path, ...] = field(default_factory=tuple)


def import_minari() -> Any:
    """The minari package, or a one-line UsageError that names the pip command."""
    try:
        import minari
    except ImportError:
        raise UsageError(
            f"Minari export needs the minari package: {MINARI_PIP} (or install sonic-rl with its [minari] extra)"
        ) from None
    return minari


@dataclass(frozen=True)
class _Source:
    """The fields every exported episode must share (one observation and action space)."""

    game: str
    action_names: tuple[str, ...]
    button_names: tuple[str, ...]
    frame_skip: int
    frame_shape: tuple[int, ...]
    ram_size: int
    buttons_per_step: int


def _source(ep: EpisodeReader) -> _Source:
    return _Source(
        ep.meta.game, ep.meta.action_names, ep.meta.button_names, ep.meta.frame_skip,
        tuple(ep.frame_shape), ep.ram_size, int(ep.datasets()["buttons"].shape[1]),
    )  # fmt: skip


def _observation_bytes(source: _Source, kind: ObservationKind) -> int:
    frame = int(np.prod(source.frame_shape)) if kind is not ObservationKind.RAM else 0
    ram = source.ram_size if kind is not ObservationKind.FRAMES else 0
    return frame + ram


def _check_sources(files: Sequence[Path], kind: ObservationKind) -> tuple[_Source, list[Path], list[int]]:
    """The common source of ``files``, the files with steps, and their step counts."""
    first: tuple[Path, _Source] | None = None
    kept, steps = [], []
    for path in files:
        with EpisodeReader(path) as ep:
            source = _source(ep)
            n = ep.n_steps
        if n == 0:
            continue
        if first is None:
            first = (path, source)
        else:
            for name in ("game", "action_names", "button_names", "frame_skip", "buttons_per_step"):
                if getattr(source, name) != getattr(first[1], name):
                    raise DatasetError(
                        f"{path} and {first[0]} differ in {name} ({getattr(source, name)!r} vs "
                        f"{getattr(first[1], name)!r}); export one game and action set at a time"
                    )
            if kind is not ObservationKind.RAM and source.frame_shape != first[1].frame_shape:
                raise DatasetError(f"{path} has {source.frame_shape} frames, {first[0]} {first[1].frame_shape}; "
                                   "export them separately or pick --observations ram")  # fmt: skip
            if kind is not ObservationKind.FRAMES and source.ram_size != first[1].ram_size:
                raise DatasetError(f"{path} has {source.ram_size} bytes of RAM, {first[0]} {first[1].ram_size}")
        kept.append(path)
        steps.append(n)
    if first is None:
        raise DatasetError("none of the episodes has a step; Minari needs at least one step per episode")
    return first[1], kept, steps


def _spaces(source: _Source, kind: ObservationKind) -> tuple[Any, Any]:
    from gymnasium import spaces

    frame = spaces.Box(0, 255, source.frame_shape, np.uint8)
    ram = spaces.Box(0, 255, (source.ram_size,), np.uint8)
    observation = {
        ObservationKind.RAM: ram,
        ObservationKind.FRAMES: frame,
        ObservationKind.BOTH: spaces.Dict({"frame": frame, "ram": ram}),
    }[kind]
    return observation, spaces.Discrete(len(source.action_names))


@contextlib.contextmanager
def _datasets_root(root: Path) -> Iterator[None]:
    """Minari reads its datasets folder from MINARI_DATASETS_PATH on every call."""
    before = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = before


def _infos(ep: EpisodeReader, actions_recorded: np.ndarray) -> dict[str, np.ndarray]:
    """Per-observation infos (N+1 rows); step-aligned values sit at the row of the observation they led to."""

    def after_reset(step_values: np.ndarray, first: int | float) -> np.ndarray:
        row0 = np.full((1, *step_values.shape[1:]), first, dtype=step_values.dtype)
        return np.concatenate([row0, step_values])

    return {
        "frame_counter": ep.frame_counters().astype(np.uint64),
        "timestamp": ep.timestamps().astype(np.float64),
        "buttons": after_reset(ep.buttons().astype(np.uint32), 0),
        "actor": after_reset(ep.actors().astype(np.int8), -1),
        "recorded_action": after_reset(actions_recorded.astype(np.int16), -1),
        "policy_version": after_reset(ep.policy_versions().astype(np.int32), -1),
    }


def export_minari(
    files: Sequence[Path],
    dataset_id: str,
    *,
    observations: ObservationKind = ObservationKind.RAM,
    resolve_actions: ActionResolver | None = None,
    datasets_path: Path | None = None,
    author: str | None = None,
    description: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> MinariExport:
    """Write ``files`` as the Minari dataset ``dataset_id``; ``progress(n)`` after every n steps.

    ``datasets_path``: Minari's datasets folder (default: MINARI_DATASETS_PATH, else
    ``~/.minari/datasets``, as ``minari.load_dataset`` looks it up).
    """
    minari = import_minari()
    from minari.data_collector import EpisodeBuffer
    from minari.dataset.minari_dataset import parse_dataset_id

    kind = ObservationKind(observations)
    try:
        namespace, _, _ = parse_dataset_id(dataset_id)
    except ValueError as exc:
        raise UsageError(f"{exc}; e.g. sonic-rl/airstriker/scripted-v0") from None
    all_files = [Path(f) for f in files]
    source, kept, steps = _check_sources(all_files, kind)
    skipped = tuple(f for f in all_files if f not in kept)

    root = Path(datasets_path) if datasets_path is not None else Path(minari.storage.get_dataset_path())
    final = root / dataset_id
    if final.exists():
        raise UsageError(f"a Minari dataset {dataset_id} already exists in {root}; pick another name or "
                         f"version (-v1), or delete it: minari delete {dataset_id}")  # fmt: skip
    estimate = sum(steps) * (_observation_bytes(source, kind) + 64) + len(kept) * _observation_bytes(source, kind)
    root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(root).free
    if estimate > 0.95 * free:
        raise UsageError(f"the dataset needs about {estimate / 2**30:.1f} GiB but {root} has {free / 2**30:.1f} GiB "
                         "free; pick --observations ram or another --datasets-path")  # fmt: skip

    observation_space, action_space = _spaces(source, kind)
    episode_meta: list[dict[str, Any]] = []
    counts = {"human": 0, "mapped": 0}
    policies: set[str] = set()
    emulators: set[str] = set()
    profile_toml = ""

    def buffers() -> Iterator[Any]:
        nonlocal profile_toml
        for episode_id, path in enumerate(kept):
            with EpisodeReader(path) as ep:
                meta = ep.meta
                profile_toml = profile_toml or meta.profile_toml
                policies.add(meta.policy_id)
                emulators.add(meta.emulator)
                n = ep.n_steps
                recorded = ep.actions().astype(np.int64)
                actions = recorded
                human = int((recorded < 0).sum())
                mapped = 0
                if human:
                    if resolve_actions is None:
                        raise DatasetError(f"{path} has {human} human steps (action -1) and no action rule was given")
                    actions, mapped, human = resolve_actions(meta, recorded, ep.buttons())
                bad = (actions < 0) | (actions >= len(source.action_names))
                if bad.any():
                    raise DatasetError(f"{path}: action {int(actions[bad][0])} at step {int(np.argmax(bad))} is "
                                       f"outside the {len(source.action_names)}-action set")  # fmt: skip
                counts["human"] += human
                counts["mapped"] += mapped
                rewards = ep.rewards().astype(np.float32)
                terminated = ep.terminated().astype(bool)
                truncated = ep.truncated().astype(bool)
                infos = _infos(ep, recorded)
                # One stored chunk of steps per append; the last batch also carries observation N.
                batch = ep.chunk_frames
                for start in range(0, n, batch):
                    stop = min(start + batch, n)
                    rows = slice(start, stop + 1 if stop == n else stop)
                    obs: Any
                    if kind is ObservationKind.RAM:
                        obs = ep.ram(rows.start, rows.stop)
                    elif kind is ObservationKind.FRAMES:
                        obs = ep.frames(rows.start, rows.stop)
                    else:
                        obs = {"frame": ep.frames(rows.start, rows.stop), "ram": ep.ram(rows.start, rows.stop)}
                    yield EpisodeBuffer(
                        id=episode_id,
                        observations=obs,
                        actions=actions[start:stop],
                        rewards=rewards[start:stop],
                        terminations=terminated[start:stop],
                        truncations=truncated[start:stop],
                        infos={key: value[rows] for key, value in infos.items()},
                    )
                    if progress is not None:
                        progress(stop - start)
                episode_meta.append({
                    "total_steps": n,  # the appends above each overwrote it with their batch's length
                    "source_file": path.name,
                    "session_id": meta.session_id,
                    "episode_index": meta.episode_index,
                    "end_reason": ep.end_reason.label,
                    "policy_id": meta.policy_id,
                    "mode": meta.mode,
                    "emulator": meta.emulator,
                    "created": meta.created,
                    "return": ep.episode_return,
                    "human_steps": human,
                    "mapped_steps": mapped,
                    "gaps": int(ep.gaps().shape[0]),
                })

    staging = root / f".{dataset_id.replace('/', '_')}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with _datasets_root(staging), warnings.catch_warnings():
            # Minari warns about every optional field left empty (author, code link, env spec...).
            warnings.simplefilter("ignore", UserWarning)
            dataset = minari.create_dataset_from_buffers(
                dataset_id,
                buffers(),  # a generator: update_episodes takes any iterable, one chunk at a time
                observation_space=observation_space,
                action_space=action_space,
                algorithm_name=", ".join(sorted(policies)) or None,
                author=author,
                description=description or _description(source, kind),
                jpeg_encoding=False,  # lossless: images stay raw arrays, as the round trip requires
            )
            storage = dataset.storage
            storage.update_episode_metadata(episode_meta, range(len(episode_meta)))
            storage.update_metadata({
                "sonic_rl_game": source.game,
                "sonic_rl_frame_skip": source.frame_skip,
                "sonic_rl_action_names": list(source.action_names),
                "sonic_rl_button_names": list(source.button_names),
                "sonic_rl_observations": kind.value,
                "sonic_rl_emulators": sorted(emulators),
                "sonic_rl_profile_toml": profile_toml,
                "sonic_rl_human_steps": counts["human"],
                "sonic_rl_mapped_steps": counts["mapped"],
                "sonic_rl_infos": "N+1 rows; row 0 is the reset (buttons 0, actor/recorded_action/policy_version -1)",
            })
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / dataset_id, final)
        fsync_dir(final.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if namespace is not None:
        with _datasets_root(root):
            if namespace not in minari.namespace.list_local_namespaces():
                minari.namespace.create_namespace(namespace)
    size = sum(f.stat().st_size for f in final.rglob("*") if f.is_file())
    return MinariExport(dataset_id, final, len(kept), sum(steps), size, counts["human"], counts["mapped"], skipped)


def _description(source: _Source, kind: ObservationKind) -> str:
    shape = {
        ObservationKind.RAM: f"the console's main RAM ({source.ram_size} bytes)",
        ObservationKind.FRAMES: f"RGB frames {'x'.join(map(str, source.frame_shape))}",
        ObservationKind.BOTH: f"a dict of RGB frames {'x'.join(map(str, source.frame_shape))} ('frame') and the "
        f"console's main RAM ({source.ram_size} bytes, 'ram')",
    }[kind]
    return (
        f"{source.game} episodes recorded with sonic-rl (frame skip {source.frame_skip}). Observations: {shape}. "
        f"Actions: the game profile's {len(source.action_names)} discrete actions ({', '.join(source.action_names)})."
    )
