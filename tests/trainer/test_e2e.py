"""End to end through the real commands: ``sonic-rec record`` -> ``sonic-train offline`` -> ``sonic-train eval``.

Real stable-retro emulator, real websocket recorder, real episode files, a tiny budget
(2 episodes of 60 steps, 20 updates of batch 8, 2 evaluation episodes of 50 steps).
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

from dataset.catalog import check, find_episode_files
from dataset.episode import EpisodeReader
from trainer.checkpoint import latest_checkpoint, load_checkpoint
from trainer.config import Algo, TrainConfig
from trainer.metrics import CSV_COLUMNS

GAME = "Airstriker-Genesis-v0"
SONIC_REC = [sys.executable, "-c", "from recorder.cli import main; main()"]
SONIC_TRAIN = [sys.executable, "-c", "from trainer.cli import main; main()"]
ACTIONS = ("noop", "fire", "left", "right", "left_fire", "right_fire")


def run_at_a_terminal(cmd: list[str], timeout: float = 120) -> str:
    """Run ``cmd`` with standard error on a pseudo-terminal (120 columns); return what it drew there."""
    import fcntl
    import os
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 1 << 16)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert proc.wait(timeout=timeout) == 0, out.decode(errors="replace")
    return out.decode(errors="replace")


def run(cmd: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd[3:]} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_record_train_eval_through_the_commands(tmp_path: Path) -> None:
    data, run_dir, cache, evals = tmp_path / "data", tmp_path / "run", tmp_path / "cache", tmp_path / "eval"

    run([*SONIC_REC, "record", "--emulator", "retro", "--game", GAME, "--policy", "random",
         "--episodes", "2", "--max-steps", "60", "--out", str(data), "--port", "0", "--no-progress"])  # fmt: skip
    files = find_episode_files([data])
    assert len(files) == 2
    for f in files:
        assert check(f) == []

    # A 42x42 frame keeps the CPU budget small; the Nature CNN still fits (9 -> 3 -> 1).
    out = run([*SONIC_TRAIN, "offline", str(data), "--run", str(run_dir), "--updates", "20",
               "--batch-size", "8", "--n-step", "3", "--target-update", "5", "--log-every", "5",
               "--checkpoint-every", "10", "--frame-size", "42x42", "--cache-dir", str(cache),
               "--device", "cpu", "--seed", "1", "--no-progress"]).stdout  # fmt: skip
    assert re.search(r"trained 20 updates \([\d.]+ updates/s\); loss [\d.]+, mean Q -?[\d.]+", out), out

    config = TrainConfig.load(run_dir / "config.json")
    assert config.algo is Algo.CQL and config.updates == 20 and config.batch_size == 8 and config.n_step == 3
    assert sorted(config.files) == sorted(map(str, files))
    dataset = json.loads((run_dir / "dataset.json").read_text())
    assert dataset["game"] == GAME and tuple(dataset["action_names"]) == ACTIONS
    assert dataset["mapped_share"] == 0.0  # policy episodes: every step is an action of the set

    ckpts = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert ckpts == ["ckpt-000000010.pt", "ckpt-000000020.pt"]
    latest = latest_checkpoint(run_dir)
    assert latest is not None and latest.name == "ckpt-000000020.pt"
    state = load_checkpoint(latest)  # weights_only=True inside
    assert state["updates"] == 20
    assert state["config"] == config.to_dict()
    assert state["dataset"]["game"] == GAME
    assert state["dataset"]["n_transitions"] == 120
    assert {"model", "target", "optimizer", "rng", "dataset_fingerprint"} <= set(state)

    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [int(r["update"]) for r in rows] == [5, 10, 15, 20]
    assert all(float(r["loss"]) >= 0 and float(r["updates_per_s"]) > 0 for r in rows)
    assert any(p.name.startswith("events.out.tfevents") for p in (run_dir / "tb").iterdir())

    out = run([*SONIC_TRAIN, "eval", str(run_dir), "--episodes", "2", "--max-steps", "50",
               "--epsilon", "0.05", "--record", str(evals), "--no-progress"]).stdout  # fmt: skip
    lines = out.splitlines()
    episodes = [re.fullmatch(r"episode (\d): return (-?[\d.]+), length (\d+)", line) for line in lines[:2]]
    assert all(episodes), out
    assert [int(m[3]) for m in episodes if m] == [50, 50]  # Airstriker lasts longer than 50 steps
    mean = re.search(r"mean return (-?[\d.]+) \(std [\d.]+\), median (-?[\d.]+); mean length 50.0", out)
    assert mean, out
    returns = [float(m[2]) for m in episodes if m]
    assert abs(float(mean[1]) - sum(returns) / 2) < 0.01

    saved = find_episode_files([evals])
    assert len(saved) == 2
    for path in saved:
        assert check(path) == []
        with EpisodeReader(path) as ep:
            assert ep.meta.game == GAME
            assert ep.meta.policy_id == f"cql@{latest}"
            assert ep.n_steps == 50
            assert set(ep.actions().tolist()) <= set(range(len(ACTIONS)))
    assert sorted(round(_episode_return(p), 2) for p in saved) == sorted(returns)

    # At a terminal, eval draws one bar, labelled as evaluation (it used to say "recording:").
    drawn = run_at_a_terminal([*SONIC_TRAIN, "eval", str(run_dir), "--episodes", "1", "--max-steps", "20"])
    assert "eval: 100%" in drawn and "1/1" in drawn and "record" not in drawn, drawn


def _episode_return(path: Path) -> float:
    with EpisodeReader(path) as ep:
        return float(ep.rewards().sum())


def test_atari_recording_trains_offline_and_evaluates_on_ale(tmp_path: Path) -> None:
    """An ALE recording (210x160 frames, 128 bytes of RAM) is ordinary training data (issue 9 item 4)."""
    data, run_dir = tmp_path / "data", tmp_path / "run"
    run([*SONIC_REC, "record", "--emulator", "ale", "--game", "pong", "--policy", "random", "--episodes", "2",
         "--max-steps", "40", "--out", str(data), "--port", "0", "--no-progress"])  # fmt: skip
    out = run([*SONIC_TRAIN, "offline", str(data), "--run", str(run_dir), "--updates", "6", "--batch-size", "4",
               "--n-step", "2", "--target-update", "3", "--log-every", "3", "--checkpoint-every", "6",
               "--frame-size", "42x42", "--cache-dir", str(tmp_path / "cache"), "--device", "cpu",
               "--no-progress"]).stdout  # fmt: skip
    assert "trained 6 updates" in out, out
    dataset = json.loads((run_dir / "dataset.json").read_text())
    assert dataset["game"] == "pong" and dataset["n_transitions"] == 80
    assert tuple(dataset["action_names"]) == ("noop", "fire", "right", "left", "right_fire", "left_fire")
    out = run([*SONIC_TRAIN, "eval", str(run_dir), "--episodes", "1", "--max-steps", "20", "--record",
               str(tmp_path / "eval"), "--no-progress"]).stdout  # fmt: skip
    assert re.match(r"episode 0: return -?[\d.]+, length 20", out), out
    (played,) = find_episode_files([tmp_path / "eval"])
    with EpisodeReader(played) as ep:
        assert ep.meta.system == "A26" and ep.meta.policy_id.startswith("cql@")
