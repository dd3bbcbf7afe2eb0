"""``sonic-train plot RUN``: PNG charts of a run's returns, loss and Q values.

What a run folder holds (``sonic-train offline --run``, then ``online``): ``config.json``,
``dataset.json`` (the episode files it trained on), ``metrics.csv`` (one row per log
interval: update, loss, td, cql, q_mean, target_mean, ...; the online phase appends to
it), ``tb/``, ``checkpoints/``, and after ``online`` its episodes (``online.json`` says where).

Charts, written to ``RUN/plots/`` (or ``--out``):

* ``returns.png``: the return of each episode in order, with a moving mean. The episodes
  are, first found: the files given with ``--episodes`` (e.g. a ``sonic-train eval
  --record`` folder), the run's online episodes (the agent's own play), or else the
  recorded episodes the run trained on, which show the data, not the agent; the chart's
  title and the command's output say which.
* ``loss.png``: loss (and its TD and CQL parts) against updates, log scale.
* ``q.png``: mean Q of the batch's actions and mean TD target against updates.

Matplotlib draws through its Agg canvas (``Figure`` without pyplot): no display,
no global state. Each PNG is written atomically (``dataset.atomic``).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click
import numpy as np

from dataset.atomic import atomic_write
from dataset.errors import ConfigError, DatasetError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["PlotResult", "plot", "plot_run"]


@dataclass(frozen=True)
class PlotResult:
    files: tuple[Path, ...]
    #: What returns.png shows, in words.
    returns_source: str
    episodes: int
    metric_rows: int


def _read_metrics(path: Path) -> dict[str, np.ndarray]:
    """metrics.csv as columns (NaN where a row lacks a value, e.g. cql for DQN)."""
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    columns: dict[str, np.ndarray] = {}
    for key in rows[0]:
        values = []
        for row in rows:
            try:
                values.append(float(row.get(key) or "nan"))
            except ValueError:
                values.append(math.nan)
        columns[key] = np.asarray(values, dtype=np.float64)
    return columns


def _returns(run_dir: Path, episodes: Sequence[Path]) -> tuple[list[float], str]:
    """(returns in play order, what they are)."""
    from dataset.catalog import find_episode_files
    from dataset.episode import EpisodeReader
    from trainer.online_session import online_episode_files

    if episodes:
        files, source = find_episode_files(episodes), "episodes given with --episodes"
    elif files := online_episode_files(run_dir):
        source = "the run's online episodes (the agent's own play)"
    else:
        try:
            listed = json.loads((run_dir / "dataset.json").read_text()).get("files", [])
        except (OSError, ValueError):
            listed = []
        files = [Path(f) for f in listed if Path(f).is_file()]
        source = "the recorded episodes the run trained on (the data, not the agent's play)"
    keyed = []
    for path in files:
        try:
            with EpisodeReader(path) as ep:
                keyed.append(((ep.meta.created, ep.meta.session_id, ep.meta.episode_index), ep.episode_return))
        except DatasetError:
            continue  # sonic-rec verify reports broken files; a chart just leaves them out
    keyed.sort(key=lambda item: item[0])
    return [r for _, r in keyed], source


def _figure(title: str, xlabel: str, ylabel: str) -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(8, 4.5), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # episodes and updates are whole numbers
    return fig, ax


def _save(fig: Figure, path: Path) -> Path:
    return atomic_write(path, lambda f: fig.savefig(f, format="png"))


def plot_run(run_dir: Path, out: Path | None = None, episodes: Sequence[Path] = ()) -> PlotResult:
    """Write returns.png, loss.png and q.png for ``run_dir``; raises ConfigError for a folder that is not a run."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or not ((run_dir / "config.json").exists() or (run_dir / "metrics.csv").exists()):
        raise ConfigError(
            f"{run_dir} is not a run folder (no config.json or metrics.csv); "
            "pass the --run folder of sonic-train offline"
        )
    out = Path(out) if out is not None else run_dir / "plots"
    written: list[Path] = []
    name = run_dir.resolve().name

    returns, source = _returns(run_dir, episodes)
    if returns:
        fig, ax = _figure(f"{name}: returns of {source}", "episode", "return")
        x = np.arange(1, len(returns) + 1)
        ax.plot(x, returns, ".", alpha=0.5, label="return")
        window = max(1, len(returns) // 20)
        if window > 1:
            mean = np.convolve(returns, np.ones(window) / window, mode="valid")
            ax.plot(x[window - 1 :], mean, "-", label=f"mean of {window}")
        ax.legend()
        written.append(_save(fig, out / "returns.png"))

    metrics = _read_metrics(run_dir / "metrics.csv")
    rows = len(metrics.get("update", ()))
    if rows:
        update = metrics["update"]
        fig, ax = _figure(f"{name}: loss ({rows} log rows of metrics.csv)", "update", "loss")
        for key, style in (("td", {"ls": "--", "lw": 1}), ("cql", {"ls": ":", "lw": 1}), ("loss", {"lw": 2})):
            values = metrics.get(key)
            if values is not None and np.isfinite(values).any():
                ax.plot(update, values, label=key, **style)
        finite = np.concatenate([v[np.isfinite(v)] for k, v in metrics.items() if k in ("loss", "td", "cql")])
        if finite.size and (finite > 0).all():
            ax.set_yscale("log")
        ax.legend()
        written.append(_save(fig, out / "loss.png"))
        fig, ax = _figure(f"{name}: Q values", "update", "value")
        for key, label in (("q_mean", "mean Q(s, a) of the batch"), ("target_mean", "mean TD target")):
            values = metrics.get(key)
            if values is not None and np.isfinite(values).any():
                ax.plot(update, values, label=label)
        ax.legend()
        written.append(_save(fig, out / "q.png"))
    if not written:
        raise ConfigError(f"{run_dir} has nothing to plot yet: no metrics.csv rows and no episodes")
    return PlotResult(tuple(written), source, len(returns), rows)


@click.command("plot")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the PNGs (default: RUN/plots).")
@click.option("--episodes", "episodes", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Plot the returns of these episode files or folders (e.g. a sonic-train eval --record folder) "
                   "instead of the run's online episodes; repeatable.")  # fmt: skip
def plot(run_dir: Path, out: Path | None, episodes: tuple[Path, ...]) -> None:
    """Write PNG charts of RUN_DIR: returns.png, loss.png and q.png (from metrics.csv).

    Returns are those of the run's online episodes when it has some, else of the episodes it
    trained on (the data, not the agent), unless --episodes names others.
    """
    result = plot_run(run_dir, out, episodes)
    if result.episodes:
        click.echo(f"returns.png: {result.episodes} episodes, {result.returns_source}")
    else:
        click.echo("returns.png: not written (no episodes found)")
    if not result.metric_rows:
        click.echo("loss.png, q.png: not written (metrics.csv has no rows yet)")
    click.echo("wrote " + ", ".join(str(p) for p in result.files))
