"""``sonic-train``: train a Q-network offline from recorded episodes, and evaluate it.

Errors a user can fix reach them as one line (``error: ...``) with exit status 2.
"""

from __future__ import annotations

from pathlib import Path

import click

from dataset.errors import ConfigError, DatasetError
from recorder.console import run_cli
from trainer.config import Algo, DeviceChoice, PreprocessConfig, TrainConfig
from trainer.online import online
from trainer.plot import plot

__all__ = ["cli", "main"]

# Flags whose names differ from the TrainConfig field they set.
_FIELD_OF_PARAM = {"frame_size": "preprocess", "crop": "preprocess", "color": "preprocess", "paths": "files"}


def _parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--frame-size {text!r} is not HEIGHTxWIDTH, e.g. 84x84") from None
    return h, w


def _parse_crop(text: str) -> tuple[int, int, int, int]:
    try:
        top, bottom, left, right = (int(x) for x in text.split(","))
    except ValueError:
        raise ConfigError(f"--crop {text!r} is not TOP,BOTTOM,LEFT,RIGHT pixels, e.g. 0,16,0,0") from None
    return top, bottom, left, right


@click.group()
@click.version_option(package_name="sonic-rl")
def cli() -> None:
    """Offline training (DQN, Double DQN, CQL) over episodes recorded by sonic-rec."""


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--run", "run_dir", type=click.Path(path_type=Path), required=True,
              help="Run folder: checkpoints, metrics.csv, tb/ and config.json go here.")
@click.option("--algo", type=click.Choice([a.value for a in Algo]), default=Algo.CQL.value,
              show_default=True, help="cql suits fixed data best (d3rlpy's Atari benchmark).")
@click.option("--updates", type=int, default=100_000, show_default=True, help="Total gradient updates.")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--lr", type=float, default=1e-4, show_default=True)
@click.option("--gamma", type=float, default=0.99, show_default=True)
@click.option("--n-step", type=int, default=1, show_default=True)
@click.option("--target-update", type=int, default=2000, show_default=True,
              help="Target network sync period in updates.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", type=click.Choice([d.value for d in DeviceChoice]), default="auto",
              show_default=True)
@click.option("--resume", is_flag=True, help="Continue the run in --run from its latest checkpoint.")
@click.option("--cql-alpha", type=float, default=1.0, show_default=True, help="Weight of the CQL term.")
@click.option("--dueling", is_flag=True, help="Dueling head (Wang et al. 2016).")
@click.option("--frame-stack", type=int, default=4, show_default=True)
@click.option("--frame-size", default="84x84", show_default=True, help="HEIGHTxWIDTH after resizing.")
@click.option("--crop", default="0,0,0,0", show_default=True,
              help="Pixels cut before resizing: TOP,BOTTOM,LEFT,RIGHT.")
@click.option("--color", is_flag=True, help="Keep RGB instead of converting to gray.")
@click.option("--no-reward-clip", "no_reward_clip", is_flag=True, help="Do not clip rewards to [-1, 1].")
@click.option("--cache-dir", default="", help="Replay cache folder (default: ~/.cache/sonic-rl/replay).")
@click.option("--log-every", type=int, default=100, show_default=True)
@click.option("--checkpoint-every", type=int, default=5000, show_default=True)
@click.option("--no-amp", is_flag=True, help="Train in float32 even where bf16 autocast is available.")
@click.option("--no-compile", is_flag=True, help="No CUDA graph capture on CUDA.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.pass_context
def offline(ctx: click.Context, paths: tuple[Path, ...], run_dir: Path, **opts: object) -> None:
    """Train from episode files, folders or globs PATHS (e.g. data/*.h5)."""
    from dataset.catalog import find_episode_files
    from trainer.offline import train_offline

    resume = bool(opts["resume"])
    files: list[Path] = []
    if paths:
        files = sorted(find_episode_files(paths))
        if not files:
            raise DatasetError(
                f"no episode files matched {' '.join(map(str, paths))}; pass .h5 files recorded by sonic-rec"
            )
    elif not resume:
        raise DatasetError("no episode files given; pass .h5 files, folders or globs (e.g. data/*.h5)")
    h, w = _parse_size(str(opts["frame_size"]))
    config = TrainConfig(
        files=tuple(str(f) for f in files),
        algo=Algo(str(opts["algo"])),
        updates=int(opts["updates"]),  # type: ignore[call-overload]
        batch_size=int(opts["batch_size"]),  # type: ignore[call-overload]
        lr=float(opts["lr"]),  # type: ignore[arg-type]
        gamma=float(opts["gamma"]),  # type: ignore[arg-type]
        n_step=int(opts["n_step"]),  # type: ignore[call-overload]
        target_update=int(opts["target_update"]),  # type: ignore[call-overload]
        seed=int(opts["seed"]),  # type: ignore[call-overload]
        device=DeviceChoice(str(opts["device"])),
        frame_stack=int(opts["frame_stack"]),  # type: ignore[call-overload]
        dueling=bool(opts["dueling"]),
        cql_alpha=float(opts["cql_alpha"]),  # type: ignore[arg-type]
        clip_rewards=not opts["no_reward_clip"],
        log_every=int(opts["log_every"]),  # type: ignore[call-overload]
        checkpoint_every=int(opts["checkpoint_every"]),  # type: ignore[call-overload]
        preprocess=PreprocessConfig(
            height=h, width=w, grayscale=not opts["color"], crop=_parse_crop(str(opts["crop"]))
        ),
        cache_dir=str(opts["cache_dir"]),
        compile=not opts["no_compile"],
        amp=not opts["no_amp"],
    )
    explicit = set()
    for name in ctx.params:
        if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE:
            explicit.add(_FIELD_OF_PARAM.get(name, name))
    explicit.discard("resume")
    explicit.discard("no_progress")
    if "no_reward_clip" in explicit:
        explicit.add("clip_rewards")
    if "no_compile" in explicit:
        explicit.add("compile")
    if "no_amp" in explicit:
        explicit.add("amp")
    result = train_offline(
        config, run_dir, resume=resume, explicit=sorted(explicit), progress=not opts["no_progress"]
    )
    m = result.last_metrics
    click.echo(
        f"trained {result.updates} updates ({result.updates_per_s:.1f} updates/s); "
        f"loss {m.get('loss', float('nan')):.4f}, mean Q {m.get('q_mean', float('nan')):.3f}; "
        f"checkpoint {result.checkpoint}"
    )


@cli.command("eval")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--episodes", type=int, default=5, show_default=True)
@click.option("--checkpoint", "checkpoint", type=click.Path(path_type=Path), default=None,
              help="Checkpoint file (default: the run's latest).")
@click.option("--record", "record_dir", type=click.Path(path_type=Path), default=None,
              help="Also save the evaluation episodes as HDF5 files here.")
@click.option("--max-steps", type=int, default=None, help="Step limit per episode (default: the profile's).")
@click.option("--epsilon", type=float, default=0.0, show_default=True,
              help="Probability of a random action (0 = greedy).")
@click.option("--device", type=click.Choice([d.value for d in DeviceChoice]), default="cpu",
              show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-progress", is_flag=True)
def eval_(
    run_dir: Path,
    episodes: int,
    checkpoint: Path | None,
    record_dir: Path | None,
    max_steps: int | None,
    epsilon: float,
    device: str,
    seed: int,
    no_progress: bool,
) -> None:
    """Play the run's Q-network greedily on the embedded emulator; print returns and lengths."""
    from trainer.evaluation import evaluate

    report = evaluate(
        run_dir, episodes=episodes, checkpoint=checkpoint, record_dir=record_dir, max_steps=max_steps,
        epsilon=epsilon, device=DeviceChoice(device), seed=seed, progress=not no_progress,
    )
    for i, (ret, length) in enumerate(zip(report.returns, report.lengths, strict=True)):
        click.echo(f"episode {i}: return {ret:.2f}, length {length}")
    click.echo(
        f"mean return {report.mean_return:.2f} (std {report.std_return:.2f}), median {report.median_return:.2f}; "
        f"mean length {report.mean_length:.1f}, median {report.median_length:.1f}"
    )
    if record_dir is not None:
        click.echo(f"episodes saved in {record_dir}")


cli.add_command(online)
cli.add_command(plot)


def main() -> None:
    """Console entry point (``sonic-train``): one line for a user's mistake (recorder.console)."""
    run_cli(cli, interrupted="interrupted; resume with --resume")


