"""``sonic-train online``: the online store, the mixed sampler, and the real command end to end.

The end-to-end tests use the embedded stable-retro emulator, real websockets and
real files: a tiny offline run (recorded and trained once per module), then
``online --resume`` with tiny budgets (36x36 frames, episodes of a few dozen steps).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from dataset.episode import EndReason, EpisodeReader
from dataset.errors import ConfigError, DatasetError
from recorder.profile import load_profile
from trainer.checkpoint import latest_checkpoint, load_checkpoint, run_checkpoints
from trainer.config import EpsilonSchedule, OnlineConfig, PreprocessConfig, TrainConfig
from trainer.evaluation import load_policy
from trainer.offline import open_store, train_offline
from trainer.online import run_online
from trainer.online_store import MixedSampler, OnlineStore

from .conftest import GAME, write_episode

REPO = Path(__file__).resolve().parents[2]
PRE = PreprocessConfig(height=36, width=36)
OFFLINE_UPDATES = 10


# --------------------------------------------------------------------------- units


def _store(**kw: object) -> OnlineStore:
    profile = load_profile(GAME)
    args: dict[str, object] = {"game": GAME, "action_names": profile.action_names, "gamma": 0.5, "n_step": 2,
                               "frame_stack": 2, "clip_rewards": False}  # fmt: skip
    args.update(kw)
    return OnlineStore(PRE, **args)  # type: ignore[arg-type]


def test_online_store_grows_from_files_and_matches_the_offline_index(tmp_path: Path) -> None:
    a = write_episode(tmp_path / "d", rewards=[1, 2, 4], end=EndReason.LIFE_LOST, first_value=10)
    b = write_episode(tmp_path / "d", rewards=[8, 16], end=EndReason.DISCONNECT, first_value=100, index=1)
    store = _store()
    assert len(store) == 0 and store.snapshot() is None
    first = store.add_file(a)
    assert (first.steps, first.episode_return, first.terminated) == (3, 7.0, True)
    snap_a = store.snapshot()
    store.add_file(b)
    assert len(store) == 5 and store.n_episodes == 2
    # The earlier snapshot is untouched by the append (lock-free readers).
    assert snap_a is not None and len(snap_a) == 3
    # Same transitions as the offline cache built from the same files.
    cfg = TrainConfig(files=(str(a), str(b)), gamma=0.5, n_step=2, frame_stack=2, clip_rewards=False,
                      preprocess=PRE, cache_dir=str(tmp_path / "cache"))  # fmt: skip
    offline = open_store(cfg)
    snap = store.snapshot()
    assert snap is not None
    for name in ("obs", "next_obs", "returns", "discounts", "actions", "episode_first_obs"):
        np.testing.assert_array_equal(getattr(snap.index, name), getattr(offline.index, name))
    np.testing.assert_array_equal(snap.frames, np.asarray(offline.frames))
    # Truncated (disconnect) last step bootstraps; terminated does not.
    assert snap.index.discounts[2] == 0.0 and snap.index.discounts[4] == pytest.approx(0.5)


def test_online_store_and_offline_cache_cut_targets_at_lost_lives_alike(tmp_path: Path) -> None:
    path = write_episode(tmp_path / "d", rewards=[1, 2, 4, 8], end=EndReason.STEP_LIMIT, lives=[3, 3, 2, 2, 2])
    store = _store(life_loss_terminal=True)
    store.add_file(path)
    cfg = TrainConfig(files=(str(path),), gamma=0.5, n_step=2, frame_stack=2, clip_rewards=False, preprocess=PRE,
                      cache_dir=str(tmp_path / "cache"), life_loss_terminal=True)  # fmt: skip
    snap, offline = store.snapshot(), open_store(cfg)
    assert snap is not None
    for name in ("next_obs", "returns", "discounts", "mc_returns"):
        np.testing.assert_array_equal(getattr(snap.index, name), getattr(offline.index, name))
    # Step 1 lost a life: the windows of steps 0 and 1 end there; the step-limit end bootstraps.
    assert snap.index.discounts.tolist() == [0.0, 0.0, 0.25, 0.5]
    assert _store().add_file(path).terminated is False  # the episode itself is not terminal


def test_online_store_refuses_another_action_set(tmp_path: Path) -> None:
    names = tuple(f"a{i}" for i in range(6))
    other = write_episode(tmp_path, rewards=[1], end=EndReason.STEP_LIMIT, action_names=names)
    with pytest.raises(DatasetError, match="this run plays"):
        _store().add_file(other)


def test_online_store_reads_human_steps_by_the_offline_rule(tmp_path: Path) -> None:
    # One rule for episode files (trainer.episode_arrays): human steps (-1) get their buttons' action online too.
    b, left, up = 1, 1 << 6, 1 << 4
    buttons = np.array([[b] * 4, [left | b] * 4, [up | b] * 4, [up] * 4], dtype=np.uint16)
    path = write_episode(tmp_path / "d", rewards=[0, 0, 0, 0], end=EndReason.LIFE_LOST, actions=[-1] * 4,
                         buttons=buttons)  # fmt: skip
    store = _store()
    store.add_file(path)
    offline = open_store(TrainConfig(files=(str(path),), gamma=0.5, n_step=2, frame_stack=2, preprocess=PRE,
                                     clip_rewards=False, cache_dir=str(tmp_path / "cache")))  # fmt: skip
    snap = store.snapshot()
    assert snap is not None
    assert snap.index.actions.tolist() == offline.index.actions.tolist() == [1, 4, 1, 0]


def test_mixed_sampler_draws_the_online_fraction(tmp_path: Path) -> None:
    off = write_episode(tmp_path / "off", rewards=[0] * 6, end=EndReason.STEP_LIMIT, first_value=1)
    on = write_episode(tmp_path / "on", rewards=[0] * 6, end=EndReason.STEP_LIMIT, first_value=200)
    cfg = TrainConfig(files=(str(off),), frame_stack=2, preprocess=PRE, cache_dir=str(tmp_path / "cache"))
    offline = open_store(cfg)
    online = _store(frame_stack=2)
    sampler = MixedSampler(offline, online, 0.25)
    rng = np.random.default_rng(0)
    # Nothing online yet: the whole batch is offline.
    assert sampler.split(8) == (8, 0)
    assert (sampler.sample(8, rng).states < 100).all()
    online.add_file(on)
    assert sampler.split(8) == (6, 2)
    out = np.empty((8, 2, *sampler.state_shape), dtype=np.uint8)
    batch = sampler.sample(8, rng, out=out)
    assert batch.states is out
    # Frames are flat images of value first_value + j: offline ones < 100, online ones >= 200.
    per_row = out.reshape(8, -1)
    assert (per_row[:6] < 100).all() and (per_row[6:] >= 200).all()
    assert batch.actions.shape == batch.returns.shape == batch.discounts.shape == (8,)
    with pytest.raises(DatasetError):
        MixedSampler(offline, online, 1.5)


def test_epsilon_schedule_is_linear_then_flat() -> None:
    s = EpsilonSchedule(0.5, 0.1, 100)
    assert s(0) == 0.5 and s(50) == pytest.approx(0.3) and s(100) == 0.1 and s(10**6) == 0.1
    assert EpsilonSchedule(0.3, 0.2, 0)(0) == 0.2
    with pytest.raises(ConfigError):
        EpsilonSchedule(1.5, 0.1, 10)
    with pytest.raises(ConfigError, match="--online-fraction"):
        OnlineConfig(run_dir="x", online_fraction=2.0)


def test_online_needs_a_trained_run(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a run folder"):
        run_online(OnlineConfig(run_dir=str(tmp_path / "nothing")))


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two recorded episodes of random play and a 10-update CQL run on them."""
    from recorder.recording import RecordConfig, record

    base = tmp_path_factory.mktemp("offline")
    record(RecordConfig(out=base / "data", game=GAME, emulator="retro", policy="random", episodes=2, max_steps=40,
                        port=0, progress=False))  # fmt: skip
    files = sorted((base / "data").glob("*.h5"))
    cfg = TrainConfig(files=tuple(map(str, files)), updates=OFFLINE_UPDATES, batch_size=8, checkpoint_every=5,
                      preprocess=PRE, cache_dir=str(base / "cache"), device="cpu")  # fmt: skip
    train_offline(cfg, base / "run", progress=False, tensorboard=False)
    return base / "run"


@pytest.fixture
def run(offline_run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(offline_run, dst)
    return dst


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _command(run: Path, *args: str) -> list[str]:
    # The real command, as the sonic-train entry point runs it.
    return [sys.executable, "-c", "from trainer.cli import main; main()", "online", "--resume", str(run),
            "--port", "0", "--device", "cpu",
            "--progress-every", "1", *args]  # fmt: skip


def _online(run: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_command(run, *args), capture_output=True, text=True, timeout=timeout, env=_env(),
                          cwd=run.parent)  # fmt: skip


def _episodes(folder: Path) -> list[EpisodeReader]:
    return [EpisodeReader(p) for p in sorted(folder.glob("*.h5"))]


TINY = ("--emulator", "retro", "--max-steps", "30", "--sync-every", "2", "--checkpoint-every", "5",
        "--epsilon", "0.5", "0.1", "200")  # fmt: skip


def test_online_resume_records_trains_and_resumes_again(run: Path) -> None:
    first = _online(run, *TINY, "--steps", "120")
    assert first.returncode == 0, first.stderr
    assert "online:" in first.stdout and "updates" in first.stdout  # the summary line (progress lines: every 5 s)

    # New episode files, in the run's online folder, marked with what produced them.
    eps = _episodes(run / "online")
    assert sum(e.n_steps for e in eps) >= 120
    versions: set[int] = set()
    for ep in eps:
        extra = dict(ep.meta.extra)
        assert ep.meta.mode == "policy" and ep.meta.policy_id == f"cql-online@{run}"
        assert Path(extra["checkpoint"]).name.startswith("ckpt-")
        assert 0.1 <= float(extra["epsilon"]) <= 0.5
        v = ep.policy_versions()
        assert (np.diff(v.astype(np.int64)) >= 0).all()  # the actor's copy only moves forward
        assert v[0] >= int(extra["policy_version"]) >= OFFLINE_UPDATES
        versions.update(int(x) for x in v)
        ep.close()
    # The actor was refreshed from the learner during the session (--sync-every 2).
    assert len(versions) >= 2 and max(versions) > OFFLINE_UPDATES

    # The update counter advanced and the checkpoint loads, for training and for play.
    ckpt = latest_checkpoint(run)
    assert ckpt is not None
    state = load_checkpoint(ckpt)
    u1 = int(state["updates"])
    assert u1 > OFFLINE_UPDATES and state["online"]["env_steps"] >= 120
    # The run's own config is kept; the online phase's CQL weight (default 0) is recorded beside it.
    assert state["config"] == TrainConfig.load(run / "config.json").to_dict()
    assert state["online"]["cql_alpha"] == 0.0 and state["online"]["online_fraction"] == 0.5
    policy, dataset = load_policy(ckpt, device=torch.device("cpu"))
    assert dataset["game"] == GAME and policy.network is not None

    # A second --resume continues from it: same run id, more steps, more updates.
    second = _online(run, *TINY, "--steps", "200")
    assert second.returncode == 0, second.stderr
    assert f"from {ckpt.name} (update {u1})" in second.stderr
    assert "online episode(s) of this run" in second.stderr
    state2 = load_checkpoint(latest_checkpoint(run))  # type: ignore[arg-type]
    assert int(state2["updates"]) > u1
    assert state2["online"]["run_id"] == state["online"]["run_id"]
    assert state2["online"]["env_steps"] >= 200
    assert sum(e.n_steps for e in _episodes(run / "online")) >= 200

    # The budget is a total: the same command again has nothing left to do.
    again = _online(run, *TINY, "--steps", "200")
    assert again.returncode == 0 and "nothing to do" in again.stderr


def test_the_steps_budget_ends_the_open_episode_as_budget_not_interrupted(run: Path) -> None:
    # Episodes of up to 1000 steps: the 40-step budget is spent with the first one still open.
    done = _online(run, "--emulator", "retro", "--max-steps", "1000", "--steps", "40", "--checkpoint-every", "1000")
    assert done.returncode == 0, done.stderr
    (ep,) = _episodes(run / "online")
    assert ep.end_reason is EndReason.BUDGET and ep.n_steps >= 40
    assert ep.truncated()[-1] and not ep.terminated()[-1]  # cut short: a learner still bootstraps from it
    assert "budget" in done.stderr and "interrupted" not in done.stderr
    assert "\r" not in done.stderr  # not a terminal: status lines, no bar


@pytest.fixture
def torch_threads() -> Iterator[None]:
    """run_online sizes torch's thread pool for the machine; give the other tests theirs back."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_two_clients_share_one_batched_actor(run: Path, torch_threads: None) -> None:
    result = run_online(OnlineConfig(
        run_dir=str(run), emulator="retro", clients=2, steps=160, max_steps=30, port=0, sync_every=2,
        checkpoint_every=1000, batch_window_ms=20.0, progress_every_s=60.0, tensorboard=False, keep_checkpoints=1,
        device="cpu",  # type: ignore[arg-type]
    ))  # fmt: skip
    sessions = {e.meta.session_id for e in _episodes(run / "online")}
    assert len(sessions) >= 2  # both emulators played and were recorded
    assert result.total_env_steps >= 160 and result.updates > 0
    # Requests of the two clients were answered together in one forward pass.
    assert result.mean_batch > 1.2
    assert load_checkpoint(result.checkpoint)["updates"] == OFFLINE_UPDATES + result.updates
    # --keep-checkpoints 1: the offline run's checkpoints are gone, the session's final one stays.
    assert run_checkpoints(run) == [result.checkpoint]


def _child_pids(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def _read_until(proc: subprocess.Popen[str], lines: list[str], needle: str, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if any(needle in line for line in lines):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} not seen; stderr:\n{''.join(lines)}")


def test_killed_client_is_saved_truncated_then_ctrl_c_checkpoints(run: Path) -> None:
    proc = subprocess.Popen(_command(run, "--emulator", "retro", "--max-steps", "200", "--steps", "100000",
                                     "--sync-every", "2"),
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_env())  # fmt: skip
    lines: list[str] = []
    ended: list[float] = []  # when each "episode ..." line arrived

    def read() -> None:
        for line in iter(proc.stderr.readline, ""):  # type: ignore[union-attr]
            if line.startswith("episode "):
                ended.append(time.monotonic())
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def episodes_seen(n: int, timeout: float) -> None:
        end = time.monotonic() + timeout
        while len(ended) < n and time.monotonic() < end and proc.poll() is None:
            time.sleep(0.02)
        assert len(ended) >= n, "".join(lines)

    def saved_disconnect() -> bool:
        return any("the client disconnected" in line and ", 0 steps," not in line for line in lines)

    def mid_episode() -> None:
        # Wait for two more episode ends, then half the last episode's length: the middle of the
        # next episode. At an episode's very start (its first step not yet taken) a kill or a Ctrl-C
        # leaves nothing to save, and a fixed sleep can land there on a runner faster than this one.
        episodes_seen(len(ended) + 2, 60)
        time.sleep((ended[-1] - ended[-2]) / 2)

    def count(needle: str) -> int:
        return sum(needle in line for line in list(lines))

    try:
        # The emulator goes away mid-episode; once more if the kill still fell between two episodes
        # (a third kill within 10 s of a client's start would stop the run, on purpose).
        for _ in range(2):
            restarts = count("starting another")
            mid_episode()
            (client,) = _child_pids(proc.pid)
            os.kill(client, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while count("starting another") == restarts and time.monotonic() < deadline:
                time.sleep(0.05)
            assert count("starting another") > restarts, "".join(lines)
            deadline = time.monotonic() + 5
            while not saved_disconnect() and time.monotonic() < deadline:
                time.sleep(0.05)
            if saved_disconnect():
                break
        mid_episode()  # the new client plays on and training continues
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=5)
    stderr = "".join(lines)
    assert proc.returncode == 130, stderr
    reasons = [e.end_reason for e in _episodes(run / "online")]
    assert EndReason.DISCONNECT in reasons  # the killed client's episode, saved as truncated
    assert EndReason.INTERRUPTED in reasons  # the episode open at Ctrl-C
    state = load_checkpoint(latest_checkpoint(run))  # type: ignore[arg-type]
    assert state["updates"] > OFFLINE_UPDATES  # learning went on across the disconnect
    disconnected = next(e for e in _episodes(run / "online") if e.end_reason is EndReason.DISCONNECT)
    assert disconnected.n_steps > 0 and disconnected.truncated()[-1] and not disconnected.terminated()[-1]

    # Running the command again carries on from the Ctrl-C checkpoint (and skips an empty episode
    # file, if the Ctrl-C landed right at an episode start).
    so_far = sum(e.n_steps for e in _episodes(run / "online"))
    again = _online(run, "--emulator", "retro", "--max-steps", "50", "--steps", str(so_far + 60))
    assert again.returncode == 0, again.stderr
    assert f"(update {state['updates']})" in again.stderr
    assert load_checkpoint(latest_checkpoint(run))["updates"] > state["updates"]  # type: ignore[arg-type]


def test_emulator_with_another_game_is_refused(run: Path) -> None:
    proc = subprocess.Popen(_command(run, "--steps", "1000"), stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=_env())  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        _read_until(proc, lines, "listening on ws://", 60)
        url = next(line for line in lines if "listening on" in line).split()[-1]
        # The Airstriker emulator announcing itself as Sonic 2 (another game, another action set).
        client = subprocess.run(
            [sys.executable, "-m", "recorder.retro_client", "--url", url, "--game", GAME,
             "--profile", "SonicTheHedgehog2-Genesis-v0"],
            capture_output=True, text=True, timeout=60, env=_env(),
        )  # fmt: skip
        assert client.returncode == 2
        assert "4006" in client.stderr and f"this run plays {GAME}" in client.stderr
        assert "SonicTheHedgehog2-Genesis-v0" in client.stderr
        assert proc.poll() is None  # the run keeps serving
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert not list((run / "online").glob("*.h5"))


# --------------------------------------------------------------------------- from scratch


def _scratch(folder: Path, *args: str, flag: str = "--run") -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", "from trainer.cli import main; main()", "online", flag, str(folder),
           "--port", "0", "--device", "cpu", "--progress-every", "1", *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=_env(), cwd=folder.parent)


SCRATCH = ("--emulator", "retro", "--max-steps", "30", "--sync-every", "2", "--checkpoint-every", "5",
           "--learning-starts", "40", "--batch-size", "8", "--frame-size", "36x36",
           "--updates-per-step", "0.5")  # fmt: skip


def test_online_from_scratch_starts_a_run_and_resumes_it(tmp_path: Path) -> None:
    run = tmp_path / "scratch"
    assert "needs --game" in _scratch(run, *SCRATCH, "--steps", "100").stderr
    first = _scratch(run, *SCRATCH, "--game", GAME, "--steps", "100", "--prev-action", "--layer-norm")
    assert first.returncode == 0, first.stderr
    assert f"learning {GAME} from scratch" in first.stderr

    # The same run folder files as an offline run: config.json (the learner flags), dataset.json, checkpoints.
    cfg = TrainConfig.load(run / "config.json")
    assert cfg.files == () and cfg.prev_action and cfg.layer_norm and cfg.algo.value == "double"
    assert cfg.preprocess.height == 36
    ckpt = latest_checkpoint(run)
    assert ckpt is not None
    state = load_checkpoint(ckpt)
    u1 = int(state["updates"])
    # Updates began after --learning-starts steps, at most 0.5 per step after that.
    assert 0 < u1 <= 0.5 * (state["online"]["env_steps"] - 40) + 1
    assert state["dataset"]["game"] == GAME and state["dataset_fingerprint"] == ""
    eps = _episodes(run / "online")
    # From scratch epsilon starts at 1 (and decays over 10% of --steps): the first episode is random play.
    assert float(dict(eps[0].meta.extra)["epsilon"]) == 1.0
    assert float(dict(eps[-1].meta.extra)["epsilon"]) == pytest.approx(0.01)
    for ep in eps:
        ep.close()
    policy, dataset = load_policy(ckpt, device=torch.device("cpu"))
    assert dataset["game"] == GAME and policy.network.prev_action

    # --run on a run folder is refused; --resume carries on (learner flags belong to --run only).
    again = _scratch(run, *SCRATCH, "--game", GAME, "--steps", "160")
    assert again.returncode == 2 and "already holds a run" in again.stderr and "Traceback" not in again.stderr
    refused = _scratch(run, "--emulator", "retro", "--steps", "160", "--lr", "0.1", flag="--resume")
    assert refused.returncode == 2 and "--lr" in refused.stderr
    second = _scratch(run, "--emulator", "retro", "--max-steps", "30", "--steps", "160", "--learning-starts", "40",
                      "--updates-per-step", "0.5", flag="--resume")  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert f"from {ckpt.name} (update {u1})" in second.stderr
    assert int(load_checkpoint(latest_checkpoint(run))["updates"]) > u1  # type: ignore[arg-type]


def test_strict_ratio_keeps_the_updates_per_step(tmp_path: Path) -> None:
    # ale-py plays hundreds of steps/s: without --strict-ratio the learner falls far behind 1 update/step.
    run = tmp_path / "strict"
    done = _scratch(run, "--emulator", "ale", "--game", "breakout", "--max-steps", "30", "--sync-every", "4",
                    "--learning-starts", "40", "--batch-size", "8", "--frame-size", "36x36", "--steps", "240",
                    "--updates-per-step", "1", "--strict-ratio")  # fmt: skip
    assert done.returncode == 0, done.stderr
    state = load_checkpoint(latest_checkpoint(run))  # type: ignore[arg-type]
    due = state["online"]["env_steps"] - 40
    # Within one --sync-every period (and the step in flight) of the ratio, never above it.
    assert due - 4 - 1 <= int(state["updates"]) <= due
    history = json.loads((run / "online.json").read_text())["sessions"]
    assert history[-1]["config"]["strict_ratio"] is True


def test_strict_ratio_needs_a_ratio() -> None:
    with pytest.raises(ConfigError, match="--updates-per-step 0 must be > 0 with --strict-ratio"):
        OnlineConfig(run_dir="r", updates_per_step=0, strict_ratio=True)


def test_online_needs_exactly_one_of_resume_and_run(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from trainer.cli import cli

    for args in ([], ["--resume", str(tmp_path / "a"), "--run", str(tmp_path / "b")]):
        result = CliRunner().invoke(cli, ["online", *args])
        assert result.exit_code == 2 and "--resume RUN" in result.output and "--run NEW" in result.output


def _no_writes() -> None:  # pragma: no cover - runs in the child before exec
    import resource

    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # every write into a file fails, as on a full disk


@pytest.mark.parametrize("case", ["under-a-file", "full"])
def test_online_refuses_an_output_folder_it_cannot_write_in_one_line(run: Path, case: str) -> None:
    """As `sonic-rec record` does (issue 11 item 2): at start, not at the first episode's save."""
    if case == "under-a-file":
        (run.parent / "a-file").write_bytes(b"")
        out, preexec = run.parent / "a-file" / "online", None
    else:
        out, preexec = run / "online", _no_writes
    before = sorted(p.name for p in run.rglob("*"))
    res = subprocess.run(_command(run, "--out", str(out), "--steps", "10"), capture_output=True, text=True,
                         timeout=90, env=_env(), cwd=run.parent, preexec_fn=preexec)  # fmt: skip
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2, res.stderr
    option = "--out" if case == "under-a-file" else "--resume"  # the full disk refuses the run folder first
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot write to {option} "), res.stderr
    assert "choose a writable folder with free space" in lines[0]
    assert sorted(p.name for p in run.rglob("*")) == before  # nothing written, no probe left
