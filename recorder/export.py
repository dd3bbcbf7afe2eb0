"""``sonic-rec export``: episode files as videos (mp4, GIF) or as a Minari dataset.

The work is done in the bottom layer (``dataset.video``, ``dataset.minari_export``);
this module adds what needs the recorder layer: the action rule for human steps
(``recorder.action_set``) and the terminal (progress bars, summaries).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from dataset.errors import DatasetError
from recorder.progress import Bar, echo

if TYPE_CHECKING:
    import numpy as np

    from dataset.episode import EpisodeMeta
    from dataset.minari_export import ActionResolver

__all__ = ["action_resolver", "export"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def export() -> None:
    """Turn episode files into videos, or into a Minari dataset for offline-RL libraries.

    \b
    sonic-rec export video data/ --overlay            one mp4 per episode, next to it
    sonic-rec export video data/FILE.h5 -o clip.gif   a GIF
    sonic-rec export minari data/ sonic-rl/airstriker/scripted-v0
    """


def _episode_files(paths: tuple[Path, ...]) -> list[Path]:
    from dataset.catalog import find_episode_files

    files = find_episode_files(paths)
    if not files:
        raise DatasetError(f"no episode files in {' '.join(map(str, paths))}; pass .h5 files or folders")
    return files


def _bar(total: int, unit: str, enabled: bool, desc: str) -> Bar:
    return Bar(total, desc, unit, enabled=enabled)


@export.command("video")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), default=None,
              help="A folder for the videos (default: next to each episode, named after it), or, for one "
                   "episode, the video's file name: its suffix (.mp4, .gif) picks the format.")
@click.option("--format", "fmt", type=click.Choice(["mp4", "gif"]), default=None,
              help="mp4 (H.264; default) or gif (lossless up to 256 colours).")
@click.option("--fps", type=float, default=None,
              help="Frames per second. Default: the recorded rate, 60 / the episode's frame skip (15 at skip 4).")
@click.option("--overlay", is_flag=True,
              help="Draw the step, its reward, the return so far and the buttons held in a box at the top left.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def video(paths: tuple[Path, ...], out: Path | None, fmt: str | None, fps: float | None, overlay: bool,
          no_progress: bool) -> None:  # fmt: skip
    """Write one video per episode file (PATHS: files or folders): every stored frame, in order."""
    from dataset.episode import EpisodeReader
    from dataset.video import VideoOptions, video_targets, write_video

    targets = video_targets(_episode_files(paths), out, fmt)
    total = 0
    for episode, _, _ in targets:
        with EpisodeReader(episode) as ep:
            total += ep.n_steps + 1
    seconds = 0.0
    with _bar(total, "frame", not no_progress, "video") as bar:
        for episode, target, video_format in targets:
            result = write_video(episode, target, VideoOptions(video_format, fps, overlay), bar.update)
            seconds += result.seconds
            echo(f"{result.path}: {result.frames} frames at {float(result.fps):.4g} fps ({result.seconds:.1f} s)")
    click.echo(f"wrote {len(targets)} video(s), {total} frames, {seconds:.1f} s of video", err=True)


def action_resolver() -> ActionResolver:
    """The project's one rule for human steps (``ActionSet.resolve``), with each file's own stored profile."""
    from recorder.action_set import ActionSet
    from recorder.profile import parse_profile

    cache: dict[tuple[str, tuple[str, ...]], ActionSet] = {}

    def resolve(meta: EpisodeMeta, actions: np.ndarray, buttons: np.ndarray) -> tuple[np.ndarray, int, int]:
        key = (meta.profile_toml, meta.button_names)
        if key not in cache:
            profile = parse_profile(meta.profile_toml, f"the {meta.game} profile stored in the episode")
            cache[key] = profile.action_set(meta.button_names)
        return cache[key].resolve(actions, buttons)

    return resolve


@export.command("minari")
@click.argument("folder", type=click.Path(exists=True, path_type=Path))
@click.argument("name")
@click.option("--observations", type=click.Choice(["ram", "frames", "both"]), default="ram", show_default=True,
              help="What an observation is: the console's main RAM (the game state; 64 KiB a step on the "
                   "Genesis), the RGB frames (210 KiB a step), or both as a dict. Minari stores them "
                   "uncompressed (our files compress ~350x): see docs/export.md.")
@click.option("--datasets-path", type=click.Path(file_okay=False, path_type=Path), default=None,
              envvar="MINARI_DATASETS_PATH",
              help="Minari's datasets folder (env MINARI_DATASETS_PATH; default ~/.minari/datasets).")
@click.option("--author", default=None, help="Author recorded in the dataset's metadata.")
@click.option("--description", default=None, help="Description in the metadata (default: game, spaces, actions).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def minari(folder: Path, name: str, observations: str, datasets_path: Path | None, author: str | None,
           description: str | None, no_progress: bool) -> None:  # fmt: skip
    """Write the episodes in FOLDER (one game and action set) as the Minari dataset NAME.

    NAME is a Minari dataset id, (namespace/)name-vN, e.g. sonic-rl/airstriker/scripted-v0; load it
    with minari.load_dataset(NAME). Human steps get the action their buttons stand for (the rule
    of docs/profiles.md). Needs the minari package (pip install "minari[hdf5]").
    """
    from dataset.episode import EpisodeReader
    from dataset.minari_export import ObservationKind, export_minari, import_minari

    import_minari()  # before reading anything: one line if it is missing
    files = _episode_files((folder,))
    total = 0
    for f in files:
        with EpisodeReader(f) as ep:
            total += ep.n_steps
    with _bar(total, "step", not no_progress, "minari") as bar:
        result = export_minari(
            files, name, observations=ObservationKind(observations), resolve_actions=action_resolver(),
            datasets_path=datasets_path, author=author, description=description, progress=bar.update,
        )  # fmt: skip
    for skipped in result.skipped:
        click.echo(f"left out {skipped.name}: no steps (Minari episodes need one)", err=True)
    if result.human_steps:
        click.echo(f"{result.human_steps} human steps got the action their buttons stand for "
                   f"({result.mapped_steps} of them by the nearest action)", err=True)  # fmt: skip
    click.echo(f"wrote Minari dataset {result.dataset_id}: {result.episodes} episodes, {result.steps} steps, "
               f"{result.bytes / 2**20:.1f} MiB in {result.path}; load it with minari.load_dataset({name!r})",
               err=True)  # fmt: skip
