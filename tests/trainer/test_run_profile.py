"""A run plays the profile it stored; a user profile from a temporary folder through every command.

End to end with the real commands, the embedded stable-retro emulator and real
websockets, at tiny budgets: ``sonic-rec record --profiles DIR`` with a user
profile, ``verify --replay``, ``sonic-train offline``, ``online --resume`` and
``eval``, then ``eval`` again after the user's profile file is deleted; and
``eval --emulator none`` played by an emulator client started on its own, as an
external client (the BizHawk tool) would be.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from dataset.catalog import find_episode_files
from dataset.episode import EndReason, EpisodeReader
from dataset.errors import ConfigError
from recorder.profile import load_profile, parse_profile
from recorder.profile_library import ENV_VAR, ProfileLibrary
from trainer.checkpoint import latest_checkpoint, load_checkpoint
from trainer.run_profile import RUN_PROFILE, load_run_profile, save_run_profile

REPO = Path(__file__).resolve().parents[2]
SHIPPED = "Airstriker-Genesis-v0"
USER_GAME = "MyAirstriker"
USER_MAX_STEPS = 25
COMPOSED = """score_hi = { address = 0xFF024E, type = ">u2" }
score_lo = { address = 0xFF0250, type = ">u2" }
points = { value = "score_hi * 65536 + score_lo" }
"""
SONIC_REC = [sys.executable, "-c", "from recorder.cli import main; main()"]
SONIC_TRAIN = [sys.executable, "-c", "from trainer.cli import main; main()"]


def user_profile_text(max_steps: int = USER_MAX_STEPS) -> str:
    """Airstriker under a user's id, with a shorter step limit that shows whose rules judged an episode,
    rewarded by a composed variable: the 32-bit score read as two 16-bit halves (docs/profiles.md)."""
    text = load_profile(SHIPPED).text.replace(f'id = "{SHIPPED}"', f'id = "{USER_GAME}"', 1)
    text = text.replace("max_steps = 4500", f"max_steps = {max_steps}", 1)
    text = text.replace("[variables]\n", "[variables]\n" + COMPOSED, 1)
    return text.replace('variable = "score"', 'variable = "points"', 1)


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def run(cmd: list[str], timeout: float = 180, **env: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env(**env))
    assert proc.returncode == 0, f"{cmd[3:]} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


# --------------------------------------------------------------------------- units


def _dataset(text: str, game: str = USER_GAME) -> dict[str, object]:
    profile = parse_profile(text)
    return {"game": game, "action_names": list(profile.action_names), "frame_skip": 4, "profile_toml": text}


def test_run_profile_file_then_checkpoint_then_lookup(tmp_path: Path) -> None:
    library = ProfileLibrary.default(env={})
    save_run_profile(tmp_path, user_profile_text(11))
    save_run_profile(tmp_path, user_profile_text(12))  # a run's file is never overwritten (it may be edited)
    profile, pinned = load_run_profile(tmp_path, _dataset(user_profile_text(13)), library)
    assert profile.max_steps == 11 and pinned.get(USER_GAME) is profile
    (tmp_path / RUN_PROFILE).unlink()
    profile, _ = load_run_profile(tmp_path, _dataset(user_profile_text(13)), library)
    assert profile.max_steps == 13  # the checkpoint's copy
    # A run saved before runs stored profiles: the lookup, which must know the game.
    old = {"game": SHIPPED, "action_names": list(load_profile(SHIPPED).action_names), "frame_skip": 4}
    assert load_run_profile(tmp_path, old, library)[0].id == SHIPPED
    with pytest.raises(ConfigError, match=f"saved before runs stored their profile.*unknown game '{USER_GAME}'"):
        load_run_profile(tmp_path, {**old, "game": USER_GAME}, library)


def test_run_profile_of_another_action_set_is_refused(tmp_path: Path) -> None:
    (tmp_path / RUN_PROFILE).write_text(load_profile("SonicTheHedgehog2-Genesis-v0").text)
    with pytest.raises(ConfigError, match=f"the run's {RUN_PROFILE} has SonicTheHedgehog2.*was trained on"):
        load_run_profile(tmp_path, _dataset(user_profile_text()), ProfileLibrary.default(env={}))


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def user_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(profile folder, run): two episodes recorded with the user's profile, and 10 updates trained on them."""
    base = tmp_path_factory.mktemp("user_profile")
    profiles, data, run_dir = base / "profiles", base / "data", base / "run"
    profiles.mkdir()
    (profiles / f"{USER_GAME}.toml").write_text(user_profile_text())
    run([*SONIC_REC, "record", "--emulator", "retro", "--game", USER_GAME.lower(), "--profiles", str(profiles),
         "--policy", "random", "--episodes", "2", "--out", str(data), "--port", "0", "--no-progress"])  # fmt: skip
    run([*SONIC_TRAIN, "offline", str(data), "--run", str(run_dir), "--updates", "10", "--batch-size", "8",
         "--checkpoint-every", "5", "--frame-size", "36x36", "--cache-dir", str(base / "cache"), "--device", "cpu",
         "--no-progress"])  # fmt: skip
    return profiles, run_dir


def test_user_profile_through_record_verify_offline_online_and_eval(user_run: tuple[Path, Path],
                                                                    tmp_path: Path) -> None:  # fmt: skip
    profiles, source = user_run
    run_dir = tmp_path / "run"
    shutil.copytree(source, run_dir)
    data = source.parent / "data"
    files = find_episode_files([data])
    assert len(files) == 2
    shipped = load_profile(SHIPPED)
    for f in files:
        with EpisodeReader(f) as ep:
            # The user's rules judged it: their id, their step limit, their text stored.
            assert ep.meta.game == USER_GAME and ep.meta.profile_toml == user_profile_text()
            assert ep.n_steps == USER_MAX_STEPS and ep.end_reason is EndReason.STEP_LIMIT
            # The composed variable is the shipped profile's 32-bit score, step for step.
            score = [shipped.variable("score").read(ram) for ram in ep.ram()]
            np.testing.assert_array_equal(ep.rewards(), np.diff(score))
    out = run([*SONIC_REC, "verify", "--replay", str(data)]).stdout
    assert out.count("bit for bit") == 2, out

    # The run keeps the profile: a file in the run folder and the text in every checkpoint.
    assert (run_dir / RUN_PROFILE).read_text() == user_profile_text()
    assert load_checkpoint(latest_checkpoint(run_dir))["dataset"]["profile_toml"] == user_profile_text()  # type: ignore[arg-type]

    # online --resume, the user's folder in the environment variable.
    online = run([*SONIC_TRAIN, "online", "--resume", str(run_dir), "--emulator", "retro", "--steps", "20",
                  "--max-steps", "10", "--port", "0", "--device", "cpu", "--sync-every", "2"],
                 **{ENV_VAR: str(profiles)})  # fmt: skip
    assert "online:" in online.stdout, online.stderr
    online_eps = [EpisodeReader(p) for p in sorted((run_dir / "online").glob("*.h5"))]
    assert online_eps and all(e.meta.game == USER_GAME for e in online_eps)
    for e in online_eps:
        e.close()

    # The user's profile file goes away; the run still plays its own (offline --resume never needed one).
    (profiles / f"{USER_GAME}.toml").unlink()
    evals = tmp_path / "evals"
    out = run([*SONIC_TRAIN, "eval", str(run_dir), "--episodes", "1", "--record", str(evals), "--no-progress"]).stdout
    assert re.search(rf"episode 0: return -?[\d.]+, length {USER_MAX_STEPS}\b", out), out
    (played,) = find_episode_files([evals])
    with EpisodeReader(played) as ep:
        assert ep.meta.game == USER_GAME and ep.end_reason is EndReason.STEP_LIMIT


def _read_until(proc: subprocess.Popen[str], lines: list[str], needle: str, timeout: float) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for line in lines:
            if needle in line:
                return line
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} not seen; stderr:\n{''.join(lines)}")


def _client(url: str, profile: str) -> subprocess.CompletedProcess[str]:
    """The embedded client started by hand, in policy (lockstep) mode, as an external client would be."""
    return subprocess.run([sys.executable, "-m", "recorder.retro_client", "--url", url, "--game", SHIPPED,
                           "--profile", profile], capture_output=True, text=True, timeout=90, env=_env())  # fmt: skip


def test_eval_plays_an_external_client_in_lockstep(user_run: tuple[Path, Path], tmp_path: Path) -> None:
    _, run_dir = user_run
    evals = tmp_path / "evals"
    proc = subprocess.Popen(
        [*SONIC_TRAIN, "eval", str(run_dir), "--emulator", "none", "--port", "0", "--episodes", "2",
         "--max-steps", "12", "--record", str(evals), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        url = _read_until(proc, lines, "listening on ws://", 90).split()[-1]
        assert "waiting for an emulator client (the BizHawk tool)" in _read_until(proc, lines, "waiting for", 10)
        # A client with another game is refused with its name, and eval goes on waiting.
        wrong = _client(url, SHIPPED)
        assert wrong.returncode == 2 and "4006" in wrong.stderr and f"this run plays {USER_GAME}" in wrong.stderr
        right = _client(url, USER_GAME)
        assert right.returncode == 0, right.stderr
        stdout, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=5)
    assert proc.returncode == 0, "".join(lines)
    assert re.search(r"episode 1: return -?[\d.]+, length 12\b", stdout), stdout
    eps = [EpisodeReader(p) for p in find_episode_files([evals])]
    assert len(eps) == 2
    for ep in eps:
        # The network chose every step (lockstep policy mode) of the client's game.
        assert ep.meta.mode == "policy" and ep.meta.game == USER_GAME and ep.meta.policy_id.startswith("cql@")
        assert ep.n_steps == 12 and (ep.actions() >= 0).all()
        ep.close()
