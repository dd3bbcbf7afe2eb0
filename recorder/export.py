"""``sonic-rec export``: episode files as videos (mp4, GIF) or as a Minari dataset.

The work is done in the bottom layer (``dataset.video``, ``dataset.minari_export``);
this module adds what needs the recorder layer: the action rule for human steps
(``recorder.action_set``) and the terminal (progress bars, summaries).
"""

from __future__ import annotations

from pathlib import Path

import click

from dataset.errors import DatasetError

__all__ = ["export"]


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


def _bar(total: int, unit: str, enabled: bool):  # type: ignore[no-untyped-def]
    from tqdm import tqdm

    # disable=None: no bar when stderr is not a terminal (a log file gets no \r refreshes).
    return tqdm(total=total, unit=unit, dynamic_ncols=True, disable=None if enabled else True)


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
    with _bar(total, "frame", not no_progress) as bar:
        for episode, target, video_format in targets:
            result = write_video(episode, target, VideoOptions(video_format, fps, overlay), bar.update)
            seconds += result.seconds
            bar.write(f"{result.path}: {result.frames} frames at {float(result.fps):.4g} fps ({result.seconds:.1f} s)")
    click.echo(f"wrote {len(targets)} video(s), {total} frames, {seconds:.1f} s of video", err=True)
