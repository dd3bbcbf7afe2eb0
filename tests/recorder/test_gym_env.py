"""recorder.gym_env: a Gymnasium env over the bridge, driving the embedded emulator client (issue 12, item 2)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from dataset.catalog import check
from dataset.episode import EndReason, EpisodeReader
from dataset.errors import SonicRLError, UsageError
from recorder.gym_env import BridgeEnv

GAME = "Airstriker-Genesis-v0"


@pytest.fixture
def env(tmp_path: Path):  # type: ignore[no-untyped-def]
    env = BridgeEnv(GAME, tmp_path / "data", port=0, max_steps=12, agent_id="test-agent")
    yield env
    env.close()


def test_passes_gymnasiums_env_checker(env: BridgeEnv) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the checker's complaints are warnings: none is allowed
        # Render modes are checked through a registered spec, which this env (made directly) has not;
    # render() itself is tested below.
    check_env(env, skip_render_check=True)
    assert env.action_space.n == len(env.action_names) > 1
    assert env.observation_space.shape == (224, 320, 3)


def test_an_episode_is_saved_as_an_ordinary_episode_file(env: BridgeEnv, tmp_path: Path) -> None:
    obs, info = env.reset(seed=0)
    frames, rewards, actions = [obs], [], []
    rng = np.random.default_rng(0)
    terminated = truncated = False
    while not (terminated or truncated):
        action = int(rng.integers(env.action_space.n))
        obs, reward, terminated, truncated, info = env.step(action)
        frames.append(obs)
        rewards.append(reward)
        actions.append(action)
    assert truncated and not terminated and info["end_reason"] == "step_limit" and len(actions) == 12
    path = Path(info["path"])
    assert path.parent == tmp_path / "data" and check(path) == []
    with EpisodeReader(path) as ep:
        assert ep.end_reason is EndReason.STEP_LIMIT and ep.meta.policy_id == "test-agent"
        assert ep.n_steps == 12 and ep.truncated()[-1]
        # What the agent saw, did and got is what the file holds.
        np.testing.assert_array_equal(ep.frames(), np.stack(frames))
        np.testing.assert_array_equal(ep.actions(), actions)
        np.testing.assert_allclose(ep.rewards(), rewards)
    # The next reset starts the next episode; resetting with it open saves it as agent_reset.
    env.reset()
    env.step(0)
    env.step(1)
    env.reset()
    files = sorted((tmp_path / "data").glob("*.h5"))
    with EpisodeReader(files[-1]) as ep:
        assert ep.end_reason is EndReason.AGENT_RESET and ep.n_steps == 2 and check(files[-1]) == []


def test_close_saves_the_open_episode(tmp_path: Path) -> None:
    env = BridgeEnv(GAME, tmp_path / "data", port=0, obs_type="ram", render_mode="rgb_array")
    obs, info = env.reset()
    np.testing.assert_array_equal(obs, info["ram"])
    assert obs.shape == (env.profile.ram_size,)
    for _ in range(3):
        env.step(0)
    frame = env.render()
    assert frame is not None and frame.shape == (224, 320, 3) and frame.dtype == np.uint8
    env.close()
    env.close()  # twice is fine
    (path,) = sorted((tmp_path / "data").glob("*.h5"))
    with EpisodeReader(path) as ep:
        assert ep.end_reason is EndReason.SERVER_STOP and ep.n_steps == 3


def test_a_missing_rom_is_the_clients_one_line(tmp_path: Path) -> None:
    # The profile ships, the ROM is the user's to import: the client's own error, not a timeout.
    with pytest.raises(UsageError, match=r"python -m stable_retro\.import"):
        BridgeEnv("SonicTheHedgehog2-Genesis-v0", tmp_path / "data", port=0, connect_timeout=60)


def test_no_client_within_the_timeout(tmp_path: Path) -> None:
    with pytest.raises(SonicRLError, match="no emulator client connected within 1 s"):
        BridgeEnv(GAME, tmp_path / "data", emulator="none", port=0, connect_timeout=1)


def test_a_user_profile_file_is_played_by_the_embedded_client(tmp_path: Path) -> None:
    """A .toml path as the game: the client names its id in HELLO and the recorder finds it pinned."""
    from tests.recorder.test_profile_library import write

    path = write(tmp_path / "mine", "MyAirstriker", 5)
    env = BridgeEnv(str(path), tmp_path / "data", port=0, obs_type="ram")
    try:
        env.reset()
        for _ in range(2):
            env.step(0)
    finally:
        env.close()
    (played,) = sorted((tmp_path / "data").glob("*.h5"))
    with EpisodeReader(played) as ep:
        assert ep.meta.game == "MyAirstriker" and ep.n_steps == 2
