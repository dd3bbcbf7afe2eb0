"""Episode files -> Minari: ``minari.load_dataset`` gives back every array of the episode files."""

from __future__ import annotations

import sys
from pathlib import Path

import minari
import numpy as np
import pytest

from dataset.episode import EndReason, EpisodeMeta, EpisodeReader
from dataset.errors import DatasetError, UsageError
from dataset.minari_export import MINARI_PIP, ObservationKind, export_minari, import_minari
from tests.dataset.conftest import make_meta, write_episode


def resolve_by_first_frame(meta: EpisodeMeta, actions: np.ndarray, buttons: np.ndarray) -> tuple[np.ndarray, int, int]:
    """A rule for the test's made-up action set (the real one, ActionSet.resolve, is tested in tests/recorder)."""
    human = actions < 0
    out = actions.copy()
    out[human] = buttons[human, 0] % len(meta.action_names)
    return out, int(human.sum()) // 2, int(human.sum())


@pytest.fixture
def episodes(tmp_path: Path) -> list[Path]:
    data = tmp_path / "data"
    return [
        write_episode(data, 19, chunk_frames=8, reason=EndReason.LIFE_LOST, seed=1).path,
        write_episode(data, 0, meta=make_meta(episode_index=4)).path,  # no step: left out
        write_episode(data, 8, chunk_frames=4, reason=EndReason.STEP_LIMIT, seed=2,
                      meta=make_meta(episode_index=5, policy_id="human", mode="human")).path,
    ]  # fmt: skip


@pytest.mark.parametrize("kind", list(ObservationKind))
def test_round_trip_through_load_dataset(tmp_path: Path, episodes: list[Path], kind: ObservationKind,
                                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    done: list[int] = []
    result = export_minari(episodes, "sonic-rl/test/mixed-v0", observations=kind,
                           resolve_actions=resolve_by_first_frame, progress=done.append)  # fmt: skip
    assert (result.episodes, result.steps, result.skipped) == (2, 27, (episodes[1],))
    assert sum(done) == 27 and result.path == root / "sonic-rl" / "test" / "mixed-v0"
    assert [p.name for p in root.iterdir()] == ["sonic-rl"]  # no staging folder left

    dataset = minari.load_dataset("sonic-rl/test/mixed-v0")
    assert dataset.total_episodes == 2 and dataset.total_steps == 27
    assert dataset.action_space.n == 4
    meta = dataset.storage.metadata
    assert meta["sonic_rl_action_names"] == ["noop", "left", "right", "fire"]
    assert meta["sonic_rl_frame_skip"] == 4 and meta["sonic_rl_observations"] == kind.value
    assert meta["sonic_rl_button_names"] == list(make_meta().button_names)
    human = mapped = 0
    kept = [episodes[0], episodes[2]]
    episode_meta = list(dataset.storage.get_episode_metadata(range(2)))
    for got, path, info in zip(dataset.iterate_episodes(), kept, episode_meta, strict=True):
        with EpisodeReader(path) as ep:
            n = ep.n_steps
            frames, ram = ep.frames(), ep.ram()
            if kind is ObservationKind.RAM:
                np.testing.assert_array_equal(got.observations, ram)
            elif kind is ObservationKind.FRAMES:
                np.testing.assert_array_equal(got.observations, frames)
            else:
                np.testing.assert_array_equal(got.observations["frame"], frames)
                np.testing.assert_array_equal(got.observations["ram"], ram)
            recorded = ep.actions().astype(np.int64)
            expected, m, h = resolve_by_first_frame(ep.meta, recorded, ep.buttons())
            human, mapped = human + h, mapped + m
            assert h > 0  # the fixture's episodes do have human steps
            np.testing.assert_array_equal(got.actions, expected)
            np.testing.assert_array_equal(got.rewards, ep.rewards())
            np.testing.assert_array_equal(got.terminations, ep.terminated())
            np.testing.assert_array_equal(got.truncations, ep.truncated())
            assert got.terminations[-1] == ep.end_reason.terminal and got.truncations[-1] != ep.end_reason.terminal
            infos = got.infos
            np.testing.assert_array_equal(infos["frame_counter"], ep.frame_counters())
            np.testing.assert_array_equal(infos["timestamp"], ep.timestamps())
            np.testing.assert_array_equal(infos["buttons"][1:], ep.buttons())
            np.testing.assert_array_equal(infos["actor"][1:], ep.actors())
            np.testing.assert_array_equal(infos["recorded_action"][1:], recorded)
            np.testing.assert_array_equal(infos["policy_version"][1:], ep.policy_versions())
            assert (infos["buttons"][0] == 0).all() and infos["actor"][0] == infos["recorded_action"][0] == -1
            assert all(len(v) == n + 1 for v in infos.values())
            assert info["total_steps"] == n and info["source_file"] == path.name
            assert info["end_reason"] == ep.end_reason.label and info["policy_id"] == ep.meta.policy_id
    assert (result.human_steps, result.mapped_steps) == (human, mapped)
    assert meta["sonic_rl_human_steps"] == human


def test_refusals_leave_nothing_behind(tmp_path: Path, episodes: list[Path]) -> None:
    root = tmp_path / "minari"
    with pytest.raises(DatasetError, match="human steps"):
        export_minari(episodes, "plain-v0", datasets_path=root)  # no action rule for the -1 steps
    assert list(root.iterdir()) == []  # the staging folder is gone, no half dataset under the name
    with pytest.raises(UsageError, match="Malformed dataset ID"):
        export_minari(episodes, "no version", datasets_path=root, resolve_actions=resolve_by_first_frame)
    other = write_episode(tmp_path / "other", 3, meta=make_meta(game="SonicTheHedgehog2-Genesis-v0")).path
    with pytest.raises(DatasetError, match="differ in game"):
        export_minari([episodes[0], other], "mixed-v0", datasets_path=root, resolve_actions=resolve_by_first_frame)
    export_minari(episodes, "plain-v0", datasets_path=root, resolve_actions=resolve_by_first_frame)
    with pytest.raises(UsageError, match="already exists"):
        export_minari(episodes, "plain-v0", datasets_path=root, resolve_actions=resolve_by_first_frame)
    assert sorted(p.name for p in root.iterdir()) == ["plain-v0"]


def test_missing_minari_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "minari", None)  # what `import minari` sees when it is not installed
    with pytest.raises(UsageError, match="pip install") as err:
        import_minari()
    assert MINARI_PIP in str(err.value) and "\n" not in str(err.value)
