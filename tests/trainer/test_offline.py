"""Training loop, checkpoints and resume on hand-built episode files (CPU, tiny budgets)."""

from __future__ import annotations

import csv
import dataclasses
import fractions
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dataset.episode import EndReason
from dataset.errors import ConfigError, DatasetError
from trainer.checkpoint import latest_checkpoint, load_checkpoint, prune_checkpoints, run_checkpoints, save_checkpoint
from trainer.config import Algo, PreprocessConfig, TrainConfig
from trainer.learner import resolve_device
from trainer.offline import train_offline

from .conftest import straight_and_resumed, write_episode

SONIC_TRAIN = [sys.executable, "-c", "from trainer.cli import main; main()"]


def _config(files: list[Path], cache: Path, **kw: object) -> TrainConfig:
    base = TrainConfig(
        files=tuple(str(f) for f in files), algo=Algo.CQL, updates=6, batch_size=8, n_step=2,
        target_update=2, seed=3, device="cpu", log_every=2, checkpoint_every=3,
        preprocess=PreprocessConfig(height=36, width=36), cache_dir=str(cache),
    )
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    ckpt = latest_checkpoint(run)
    assert ckpt is not None
    return load_checkpoint(ckpt)["model"]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_training_is_deterministic_on_cpu_for_a_seed(two_episode_files: list[Path], tmp_path: Path) -> None:
    cfg = _config(two_episode_files, tmp_path / "cache")
    train_offline(cfg, tmp_path / "a", progress=False, tensorboard=False)
    train_offline(cfg, tmp_path / "b", progress=False, tensorboard=False)
    train_offline(dataclasses.replace(cfg, seed=4), tmp_path / "c", progress=False, tensorboard=False)
    assert _same(_weights(tmp_path / "a"), _weights(tmp_path / "b"))
    assert not _same(_weights(tmp_path / "a"), _weights(tmp_path / "c"))


@pytest.mark.parametrize("algo", list(Algo))
def test_run_folder_holds_config_metrics_and_complete_checkpoints(
    algo: Algo, two_episode_files: list[Path], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    result = train_offline(_config(two_episode_files, tmp_path / "cache", algo=algo), run, progress=False)
    assert result.updates == 6
    assert TrainConfig.load(run / "config.json").algo is algo
    rows = list(csv.DictReader((run / "metrics.csv").read_text().splitlines()))
    assert [int(r["update"]) for r in rows] == [2, 4, 6]
    assert all(float(r["loss"]) >= 0 for r in rows)
    assert list((run / "tb").iterdir())
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["ckpt-000000003.pt", "ckpt-000000006.pt"]
    state = load_checkpoint(run / "checkpoints" / names[-1])
    assert state["updates"] == 6 and state["config"]["algo"] == algo.value
    assert state["dataset"]["game"] == "Airstriker-Genesis-v0"
    assert set(state["target"]) == set(state["model"])
    assert state["optimizer"]["state"]


def test_resume_continues_exactly_like_an_uninterrupted_run(
    two_episode_files: list[Path], tmp_path: Path
) -> None:
    cfg = _config(two_episode_files, tmp_path / "cache", target_update=4)
    straight, split = straight_and_resumed(cfg, tmp_path)
    assert _same(straight["model"], split["model"])
    assert _same(straight["target"], split["target"])
    assert straight["rng"]["state"] == split["rng"]["state"]
    rows = list(csv.DictReader((tmp_path / "split" / "metrics.csv").read_text().splitlines()))
    assert [int(r["update"]) for r in rows] == [2, 3, 4, 6]


def test_a_run_folder_from_another_config_needs_resume(two_episode_files: list[Path], tmp_path: Path) -> None:
    cfg = _config(two_episode_files, tmp_path / "cache", updates=2)
    train_offline(cfg, tmp_path / "run", progress=False, tensorboard=False)
    with pytest.raises(ConfigError, match=r"another config .*lr.*--resume"):
        train_offline(dataclasses.replace(cfg, lr=1e-3), tmp_path / "run", progress=False)
    with pytest.raises(ConfigError, match="already holds a run; pass --resume"):
        train_offline(cfg, tmp_path / "run", progress=False)
    with pytest.raises(ConfigError, match="--lr differs"):
        train_offline(dataclasses.replace(cfg, lr=1e-3), tmp_path / "run", resume=True, explicit=["lr"],
                      progress=False)
    with pytest.raises(ConfigError, match="nothing to resume"):
        train_offline(dataclasses.replace(cfg, files=()), tmp_path / "other", resume=True, progress=False)


@pytest.mark.parametrize("state", ["no folder", "empty folder", "config.json only"])
def test_resume_after_a_kill_before_the_first_checkpoint_trains_from_zero(
    state: str, two_episode_files: list[Path], tmp_path: Path
) -> None:
    # What a kill leaves before anything is saved (the cache is built before config.json is written),
    # and just after config.json: --resume with the files must start or carry on the run, not refuse.
    cfg = _config(two_episode_files, tmp_path / "cache", updates=2)
    run = tmp_path / "run"
    if state != "no folder":
        run.mkdir()
    if state == "config.json only":
        cfg.save(run / "config.json")
    result = train_offline(cfg, run, resume=True, explicit=["files"], progress=False, tensorboard=False)
    assert (result.start_update, result.updates) == (0, 2)
    assert load_checkpoint(latest_checkpoint(run))["updates"] == 2  # type: ignore[arg-type]


def test_a_refused_change_names_the_flag_that_made_it(two_episode_files: list[Path], tmp_path: Path) -> None:
    cfg = _config(two_episode_files, tmp_path / "cache", updates=2)
    train_offline(cfg, tmp_path / "run", progress=False, tensorboard=False)
    # amp is set by --no-amp (there is no --amp flag); the preprocessing by --frame-size.
    with pytest.raises(ConfigError, match=r"^--no-amp differs from the run being resumed \(amp False vs True\)"):
        train_offline(dataclasses.replace(cfg, amp=False), tmp_path / "run", resume=True, explicit=["amp"],
                      progress=False)  # fmt: skip
    other = dataclasses.replace(cfg, preprocess=PreprocessConfig(height=40, width=36))
    with pytest.raises(ConfigError, match=r"^--frame-size differs"):
        train_offline(other, tmp_path / "run", resume=True, explicit=["preprocess.height", "preprocess.width"],
                      progress=False)  # fmt: skip


def test_resume_with_other_episode_files_is_refused(two_episode_files: list[Path], tmp_path: Path) -> None:
    cfg = _config(two_episode_files, tmp_path / "cache", updates=2)
    train_offline(cfg, tmp_path / "run", progress=False, tensorboard=False)
    other = dataclasses.replace(cfg, files=(str(two_episode_files[0]),), updates=4)
    with pytest.raises(DatasetError, match="differ from the ones"):
        train_offline(other, tmp_path / "run", resume=True, explicit=["files", "updates"], progress=False)


def test_checkpoints_are_atomic_and_refuse_arbitrary_pickles(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints" / "ckpt-000000001.pt"
    with pytest.raises(ValueError):
        save_checkpoint(path, {"model": {}})
    assert not path.exists() and not list(tmp_path.rglob("*.partial*"))

    # Any class outside torch's weights_only allow-list stands for a malicious pickle.
    torch.save({"model": fractions.Fraction(1, 3)}, tmp_path / "evil.pt")
    with pytest.raises(ConfigError, match="not a readable"):
        load_checkpoint(tmp_path / "evil.pt")
    (tmp_path / "half.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ConfigError):
        load_checkpoint(tmp_path / "half.pt")


def test_cuda_asked_for_without_cuda_is_one_clear_line() -> None:
    if torch.cuda.is_available():
        assert resolve_device("cuda").type == "cuda"
        return
    with pytest.raises(ConfigError, match="CUDA is not available") as err:
        resolve_device("cuda")
    assert "\n" not in str(err.value)
    assert resolve_device("auto").type == "cpu"


def _names(run: Path) -> list[str]:
    return [p.name for p in run_checkpoints(run)]


def test_keep_checkpoints_deletes_all_but_the_newest(two_episode_files: list[Path], tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = _config(two_episode_files, tmp_path / "cache", checkpoint_every=1, keep_checkpoints=2)
    train_offline(cfg, run, progress=False, tensorboard=False)
    assert _names(run) == ["ckpt-000000005.pt", "ckpt-000000006.pt"]
    # A resumed run keeps the rule (and may change N: it does not change what is learned).
    train_offline(dataclasses.replace(cfg, updates=9, keep_checkpoints=1), run, resume=True,
                  explicit=["updates", "keep_checkpoints"], progress=False, tensorboard=False)  # fmt: skip
    assert _names(run) == ["ckpt-000000009.pt"]
    # The latest is never deleted, and 0 keeps all.
    assert prune_checkpoints(run, 1) == [] and prune_checkpoints(run, 0) == []
    assert _names(run) == ["ckpt-000000009.pt"]


def _train(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SONIC_TRAIN, "offline", *args], capture_output=True, text=True, timeout=timeout)


def _wait_for(condition: object, timeout: float, what: str, proc: subprocess.Popen[str]) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():  # type: ignore[operator]
            return
        assert proc.poll() is None, f"sonic-train exited ({proc.returncode}) before {what}"
        time.sleep(0.05)
    raise AssertionError(f"no {what} within {timeout} s")


def _metrics_rows(run: Path) -> list[int]:
    path = run / "metrics.csv"
    return [int(r["update"]) for r in csv.DictReader(path.read_text().splitlines())] if path.exists() else []


def test_ctrl_c_saves_a_checkpoint_that_resume_carries_on_from(
    two_episode_files: list[Path], tmp_path: Path
) -> None:
    run, cache = tmp_path / "run", tmp_path / "cache"
    proc = subprocess.Popen(
        [*SONIC_TRAIN, "offline", *map(str, two_episode_files), "--run", str(run), "--updates", "100000",
         "--batch-size", "8", "--frame-size", "36x36", "--cache-dir", str(cache), "--device", "cpu",
         "--log-every", "1", "--checkpoint-every", "100000", "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _wait_for(lambda: len(_metrics_rows(run)) >= 3, 120, "three logged updates", proc)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    ckpt = latest_checkpoint(run)
    assert ckpt is not None
    n = int(load_checkpoint(ckpt)["updates"])
    assert n >= 3 and ckpt.name == f"ckpt-{n:09d}.pt"  # the update it was at, not a periodic one
    assert "SIGINT: saving a checkpoint" in err
    assert f"interrupted at update {n} of 100000; carry on with: sonic-train offline --run {run} --resume" in err
    assert f"trained {n} updates" in out

    # --resume carries on from that update (the files and flags come from the run's config.json).
    again = _train("--run", str(run), "--resume", "--updates", str(n + 3), "--no-progress")
    assert again.returncode == 0, again.stderr
    assert f"resuming {run} from {ckpt.name} (update {n})" in again.stderr
    assert f"trained {n + 3} updates" in again.stdout
    assert load_checkpoint(latest_checkpoint(run))["updates"] == n + 3  # type: ignore[arg-type]
    assert _metrics_rows(run) == list(range(1, n + 4))  # one row per update, none lost or repeated

    # A finished run has nothing to do, and says so (it used to print "loss nan").
    done = _train("--run", str(run), "--resume", "--updates", str(n + 3), "--no-progress")
    assert done.returncode == 0, done.stderr
    assert f"nothing to do: {run} already has {n + 3} updates (--updates {n + 3}); raise --updates" in done.stdout
    assert "nan" not in done.stdout


def test_a_kill_before_config_json_does_not_block_resume(tmp_path: Path) -> None:
    # One long episode of large frames: preprocessing it takes seconds, and config.json is written after.
    big = write_episode(tmp_path / "data", rewards=[0.0] * 3000, end=EndReason.STEP_LIMIT, frame_shape=(224, 320, 3))
    run, cache = tmp_path / "run", tmp_path / "cache"
    proc = subprocess.Popen(
        [*SONIC_TRAIN, "offline", str(big), "--run", str(run), "--updates", "4", "--batch-size", "8",
         "--frame-size", "36x36", "--cache-dir", str(cache), "--device", "cpu"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # a note (stderr), printed just before the episode is read
        assert line.startswith("preprocessing"), line
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (run / "config.json").exists()
    # What the interrupted command tells a user to do works: the same command with --resume.
    again = _train(str(big), "--run", str(run), "--resume", "--updates", "4", "--batch-size", "8",
                   "--frame-size", "36x36", "--cache-dir", str(cache), "--device", "cpu", "--no-progress")  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert f"nothing saved in {run} yet; starting the run" in again.stderr
    assert "trained 4 updates" in again.stdout
    assert TrainConfig.load(run / "config.json").preprocess == PreprocessConfig(height=36, width=36)
