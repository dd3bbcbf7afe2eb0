"""``sonic-train plot``: PNGs for a small real run folder, and one line for a folder that is not a run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataset.errors import ConfigError
from tests.dataset.conftest import make_meta
from tests.dataset.conftest import write_episode as write_tagged
from trainer.config import Algo, PreprocessConfig, TrainConfig
from trainer.offline import train_offline
from trainer.online_session import ONLINE_META, RUN_ID_KEY
from trainer.plot import plot_run

SONIC_TRAIN = [sys.executable, "-c", "from trainer.cli import main; main()"]


@pytest.fixture
def run(two_episode_files: list[Path], tmp_path: Path) -> Path:
    """A real run folder: 8 CQL updates on two tiny episodes, metrics every 2."""
    config = TrainConfig(
        files=tuple(str(f) for f in two_episode_files), algo=Algo.CQL, updates=8, batch_size=4, seed=0,
        device="cpu", log_every=2, checkpoint_every=8, preprocess=PreprocessConfig(height=36, width=36),
        cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    train_offline(config, tmp_path / "run", progress=False, tensorboard=False)
    return tmp_path / "run"


def assert_png_chart(path: Path) -> None:
    assert path.stat().st_size > 5000, path
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (800, 450)
        pixels = np.asarray(image.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20  # lines, labels, not a blank canvas


def test_plot_writes_returns_loss_and_q(run: Path) -> None:
    result = plot_run(run)
    assert [p.name for p in result.files] == ["returns.png", "loss.png", "q.png"]
    assert all(p.parent == run / "plots" for p in result.files)
    for path in result.files:
        assert_png_chart(path)
    assert result.metric_rows == 4 and result.episodes == 2
    assert "trained on" in result.returns_source and "not the agent" in result.returns_source


def test_plot_prefers_the_run_online_episodes(run: Path, tmp_path: Path) -> None:
    (run / ONLINE_META).write_text(json.dumps({"run_id": "r1", "start_update": 8, "out": "online", "sessions": []}))
    for i in range(3):
        write_tagged(run / "online", 4, seed=i, meta=make_meta(episode_index=i, extra=((RUN_ID_KEY, "r1"),)))
    write_tagged(run / "online", 4, meta=make_meta(episode_index=9, extra=((RUN_ID_KEY, "another-run"),)))
    result = plot_run(run, tmp_path / "charts")
    assert result.episodes == 3 and "online" in result.returns_source
    assert sorted(p.name for p in (tmp_path / "charts").iterdir()) == ["loss.png", "q.png", "returns.png"]
    given = plot_run(run, tmp_path / "eval", episodes=[run / "online"])
    assert given.episodes == 4 and "--episodes" in given.returns_source


def test_not_a_run_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a run folder"):
        plot_run(tmp_path)
    done = subprocess.run([*SONIC_TRAIN, "plot", str(tmp_path / "nothing")], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ") and "not a run folder" in done.stderr


def test_plot_command(run: Path) -> None:
    done = subprocess.run([*SONIC_TRAIN, "plot", str(run)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "returns.png: 2 episodes" in done.stdout and str(run / "plots" / "q.png") in done.stdout
