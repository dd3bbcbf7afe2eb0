"""``sonic-rec``: record episodes, list them, show one, verify them.

Errors a user can fix reach them as one line (``error: ...``) with exit
status 2; internal errors are logged with their traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from dataset.errors import UsageError
from dataset.escaping import printable
from recorder import __version__
from recorder.console import run_cli
from recorder.export import export
from recorder.profile_library import PROFILES_HELP
from recorder.progress import Bar, setup_logging

__all__ = ["PROFILES_OPTION", "cli", "main"]

log = logging.getLogger("sonic_rl")


#: ``--profiles DIR``, shared by every command that looks up a game (recorder.profile_library).
PROFILES_OPTION = click.option(
    "--profiles", type=click.Path(file_okay=False, path_type=Path), default=None,
    help=PROFILES_HELP,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="sonic-rec")
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))  # fmt: skip
def cli(log_level: str) -> None:
    """Record emulator episodes (frames, full RAM, inputs, rewards) into HDF5 files, and inspect them.

    \b
    With BizHawk:   sonic-rec record --out data/          (then press Connect in the tool)
    Without it:     sonic-rec record --emulator retro --game Airstriker-Genesis-v0 --episodes 4 --out data/
    Atari 2600:     sonic-rec record --emulator ale --game breakout --episodes 4 --out data/
    Inspect:        sonic-rec ls data/ ; sonic-rec show data/FILE.h5 ; sonic-rec verify data/ --replay
    Export:         sonic-rec export video data/ --overlay ; sonic-rec export minari data/ NAME
    """
    setup_logging(log_level)


@cli.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("data"), show_default=True,
              help="Folder for the episode files (created if missing).")
@click.option("--emulator", type=click.Choice(["retro", "ale"]), default=None,
              help="Start embedded emulator clients instead of waiting for an external emulator client (the "
                   "BizHawk tool): retro (stable-retro, Genesis) or ale (ale-py, Atari 2600).")
@click.option("--game", default=None,
              help="Game profile: an id (e.g. Airstriker-Genesis-v0, SonicTheHedgehog2-Genesis-v0, breakout, pong, "
                   "space_invaders) looked up as --profiles says, or a .toml path. Clients that name no game are "
                   "matched by ROM hash when left out.")
@PROFILES_OPTION
@click.option("--policy", type=click.Choice(["random", "scripted"]), default="scripted", show_default=True,
              help="Who plays when the recorder is not given a human: uniform random actions, or the scripted "
                   "side-scroller explorer. With --emulator it runs inside each emulator process and "
                   "streams (no lockstep); in policy mode the recorder answers every step with it.")
@click.option("--mode", type=click.Choice(["human", "policy"]), default=None,
              help="For clients that let the recorder decide: 'human' records the player's buttons, 'policy' "
                   "plays --policy. Default: policy with --emulator, human otherwise.")
@click.option("--episodes", type=click.IntRange(min=1), default=None,
              help="Stop after this many episodes in all (required with --emulator; default unlimited).")
@click.option("--max-steps", type=click.IntRange(min=1), default=None,
              help="Step limit per episode (truncated there). Default: the game profile's.")
@click.option("--frame-skip", type=click.IntRange(1, 255), default=4, show_default=True,
              help="Emulated frames per step; every frame's buttons are still recorded.")
@click.option("--clients", type=click.IntRange(min=1), default=1, show_default=True,
              help="Embedded emulator processes at once (with --emulator).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the policies (client i uses seed+i; each episode's policy is seeded from it and the "
                   "episode number, so one client's recordings repeat exactly).")
@click.option("--state", default=None, help="stable-retro start state (default: the profile's).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. Anything but loopback requires --token.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="0 picks a free port.")
@click.option("--token", default=None, envvar="SONIC_RL_TOKEN",
              help="Shared secret clients must send (env SONIC_RL_TOKEN).")
@click.option("--step-timeout", type=float, default=10.0, show_default=True,
              help="Seconds a policy-mode client waits for the next buttons before giving up.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def record(out: Path, emulator: str | None, game: str | None, profiles: Path | None, policy: str, mode: str | None,
           episodes: int | None, max_steps: int | None, frame_skip: int, clients: int, seed: int, state: str | None,
           host: str, port: int, token: str | None, step_timeout: float, no_progress: bool) -> None:  # fmt: skip
    """Serve the recorder; every episode a client streams becomes one HDF5 file in --out.

    Ctrl-C (or SIGTERM) saves the episodes in progress as truncated and exits.
    """
    from recorder.profile_library import ProfileLibrary
    from recorder.recording import RecordConfig
    from recorder.recording import record as run_record

    config = RecordConfig(
        out=out, game=game, emulator=emulator or "none", policy=policy, mode=mode, episodes=episodes,
        max_steps=max_steps, frame_skip=frame_skip, clients=clients, seed=seed, host=host, port=port, token=token,
        step_timeout=step_timeout, progress=not no_progress, state=state, profiles=ProfileLibrary.default(profiles),
    )  # fmt: skip
    result = run_record(config)
    returns = [e.episode_return for e in result.episodes]
    mean = sum(returns) / len(returns) if returns else 0.0
    click.echo(
        f"recorded {len(result.episodes)} episodes, {result.steps} steps, {result.frames} frames in "
        f"{result.seconds:.1f} s ({result.frames_per_second:,.0f} frames/s); mean return {mean:.1f}; files in {out}",
        err=True,
    )
    if result.interrupted:
        sys.exit(130)


@cli.command("profiles")
@PROFILES_OPTION
def profiles_cmd(profiles: Path | None) -> None:
    """List the game profiles --game can name, and the folders searched, highest precedence first."""
    from recorder.profile_library import ProfileLibrary

    library = ProfileLibrary.default(profiles)
    for profile_id in library.ids():
        click.echo(f"{profile_id}  {library.where(profile_id)}")
    click.echo("searched, first match wins: " + "; ".join(library.describe()), err=True)


@cli.command("ls")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one object per episode) for scripts.")
def ls_cmd(paths: tuple[Path, ...], as_json: bool) -> None:
    """List the episodes in folders or files: game, steps, return, end reason, policy, size."""
    import pandas as pd

    from dataset.catalog import EPISODE_SUFFIX, find_episode_files, summarize
    from dataset.leftovers import find_leftovers

    paths = paths or (Path("data"),)
    files = find_episode_files(paths)
    rows = []
    for f in files:
        try:
            rows.append(summarize(f))
        except UsageError as exc:
            click.echo(f"warning: {printable(exc)}", err=True)
    partial = [left for left in find_leftovers(paths) if left.final_name.endswith(EPISODE_SUFFIX)]
    if as_json:
        click.echo(json.dumps(rows, indent=1, default=str))
    elif not rows:
        click.echo("no episode files found in " + ", ".join(map(str, paths)), err=True)
    else:
        df = pd.DataFrame(rows)
        df["file"] = [Path(f).name for f in df["file"]]  # the JSON keeps full paths
        for col in ("file", "game", "policy"):  # a client chose the policy id (and could craft a file)
            df[col] = df[col].map(printable)
        if "bytes_per_step" in df.columns:
            df["bytes_per_step"] = df["bytes_per_step"].round().astype(int)
        cols = [c for c in ("file", "game", "steps", "return", "end_reason", "policy", "size", "bytes_per_step")
                if c in df.columns]  # fmt: skip
        with pd.option_context("display.max_rows", None, "display.width", 200, "display.max_colwidth", 60):
            click.echo(df[cols].to_string(index=False))
        click.echo(f"{len(rows)} episodes, {int(df['steps'].sum())} steps", err=True)
    if partial:
        click.echo(f"{len(partial)} unfinished episode file(s): "
                   + "; ".join(f"{left.path.name} ({left.explain()})" for left in partial), err=True)  # fmt: skip
    if any(left.stale for left in partial):
        click.echo("`sonic-rec verify --clean` removes the stale ones", err=True)


@cli.command()
@click.argument("path", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--h5dump-hint", is_flag=True,
              help="Print instead the h5dump command line that reads PATH with the Zstd filter (HDF5_PLUGIN_PATH "
                   "set to hdf5plugin's filters); the same variable lets HDFView and plain h5py read the files.")
def show(path: Path | None, h5dump_hint: bool) -> None:
    """Print one episode's metadata and a summary of every dataset in it."""
    if h5dump_hint:
        from dataset.compression import h5dump_hint as hint
        from dataset.compression import plugin_folder

        click.echo(hint(str(path) if path else "FILE.h5"))
        click.echo(f"(HDFView and plain h5py read the files too with HDF5_PLUGIN_PATH={plugin_folder()}; "
                   "in Python, `import hdf5plugin` is enough)", err=True)  # fmt: skip
        return
    if path is None:
        raise UsageError("show needs an episode file: sonic-rec show data/FILE.h5")
    from dataset.catalog import describe

    click.echo(describe(path))


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--replay", is_flag=True,
              help="Also re-simulate stable-retro episodes from their start state and inputs and require every "
                   "stored frame and RAM byte to match.")
@click.option("--clean", is_flag=True,
              help="Delete stale temporary files and folders (unfinished episodes, checkpoints, replay-cache "
                   "folders) whose writing process on this machine has ended. Never touches one a running "
                   "process owns, nor one written on another machine.")  # fmt: skip
def verify(paths: tuple[Path, ...], replay: bool, clean: bool) -> None:
    """Check every episode file: complete, readable, checksums and counters right (and, with --replay,
    bit-exact); report temporary files left behind (--clean removes the stale ones).

    Exit status 1 if an episode file fails; leftovers alone do not fail.
    """
    from dataset.catalog import check, find_episode_files, format_bytes
    from dataset.episode import EpisodeReader
    from dataset.leftovers import find_leftovers, remove_stale

    paths = paths or (Path("data"),)
    files = find_episode_files(paths)
    leftovers = find_leftovers(paths)
    if not files and not leftovers:
        raise UsageError("no episode files found in " + ", ".join(map(str, paths)))
    problems: dict[Path, list[str]] = {}
    with Bar(len(files), "verify", "file") as bar:  # checksums of every chunk: long for big folders
        for f in files:
            problems[f] = check(f)
            bar.update()
    notes: dict[Path, str] = {}
    for f in files:
        if not problems[f]:
            with EpisodeReader(f) as ep:
                if not ep.checksummed:
                    notes[f] = f"  (schema {ep.schema_version}: no checksums; damage inside a chunk may go unseen)"
    if replay:
        _replay_all([f for f in files if not problems[f]], problems, notes)
    bad = 0
    for f in files:
        if problems[f]:
            bad += 1
            click.echo(f"FAIL {f.name}")
            for prob in problems[f]:
                click.echo(f"     {prob}")
        else:
            click.echo(f"ok   {f.name}{notes.get(f, '')}")
    removed, failed = remove_stale(leftovers) if clean else ([], [])
    for left in leftovers:
        size = format_bytes(left.size)
        if left in removed:
            click.echo(f"removed {left.path.name}: {left.explain()} ({size})")
        elif left.stale:
            click.echo(f"stale {left.path.name}: {left.explain()} ({size}); --clean removes it")
        else:
            click.echo(f"note {left.path.name}: {left.explain()}; kept")
    for left, why in failed:
        click.echo(f"could not remove {left.path}: {why}")
    if files:
        click.echo(f"{len(files) - bad} of {len(files)} episode files ok", err=True)
    stale = [left for left in leftovers if left.stale and left not in removed]
    if removed:
        click.echo(f"removed {len(removed)} stale temporary file(s), {format_bytes(sum(x.size for x in removed))}",
                   err=True)  # fmt: skip
    if stale:
        click.echo(f"{len(stale)} stale temporary file(s), {format_bytes(sum(x.size for x in stale))}: "
                   "run `sonic-rec verify --clean` to remove them", err=True)  # fmt: skip
    if bad:
        sys.exit(1)


def _replay_all(files: list[Path], problems: dict[Path, list[str]], notes: dict[Path, str]) -> None:
    """Replay each game's episodes in a child process of its own (stable-retro: one emulator per process)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from dataset.episode import EpisodeReader
    from recorder.resimulation import can_replay, replay_files

    by_game: dict[str, list[Path]] = {}
    for f in files:
        with EpisodeReader(f) as ep:
            if can_replay(ep):
                by_game.setdefault(ep.meta.game, []).append(f)
            else:
                notes[f] = "  (not replayable: not an embedded-emulator recording with a start state)"
    for group in by_game.values():
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            for path, problem, frames in pool.submit(replay_files, group).result():
                if problem:
                    problems[path].append(problem)
                else:
                    notes[path] = f"  (replayed {frames} frames bit for bit)"


cli.add_command(export)


def main() -> None:
    """Console entry point (``sonic-rec``)."""
    run_cli(cli)


if __name__ == "__main__":
    main()
