"""dataset.portability: the recorder and the trainer run with every POSIX-only branch switched off
(issue 12, item 6), as they must on Windows. One switch (``portability.POSIX``) turns them off; the
POSIX calls themselves are made to fail as they do on Windows, so a branch that still used one
would fail here."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from pathlib import Path

import pytest

from dataset import portability
from dataset.catalog import check
from dataset.episode import EndReason, EpisodeReader

GAME = "Airstriker-Genesis-v0"


@pytest.fixture
def without_posix(monkeypatch: pytest.MonkeyPatch) -> None:
    """POSIX switched off, and the POSIX-only calls failing loudly (not as OSError, which callers may catch)."""
    monkeypatch.setattr(portability, "POSIX", False)

    def no_signal_handlers(*args: object, **kwargs: object) -> None:
        raise NotImplementedError("Windows' event loops have no add_signal_handler")

    monkeypatch.setattr(asyncio.AbstractEventLoop, "add_signal_handler", no_signal_handlers)
    if sys.platform != "win32":
        import asyncio.unix_events as unix_events

        monkeypatch.setattr(unix_events._UnixSelectorEventLoop, "add_signal_handler", no_signal_handlers)
    real_open = os.open

    def open_no_folders(path: object, flags: int, *args: object, **kwargs: object) -> int:
        if os.path.isdir(path):  # type: ignore[arg-type]
            raise AssertionError(f"a folder opened (to fsync it), which Windows cannot do: {path}")
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", open_no_folders)


def test_switch_picks_the_windows_forms(without_posix: None) -> None:
    assert not portability.can_fsync_folders()
    assert "start_new_session" not in portability.detached_process_kwargs()


def test_record_ctrl_c_train_and_online_without_posix(without_posix: None, tmp_path: Path) -> None:
    from recorder.recording import RecordConfig, record
    from trainer.checkpoint import latest_checkpoint, load_checkpoint
    from trainer.config import OnlineConfig, PreprocessConfig, TrainConfig
    from trainer.offline import train_offline
    from trainer.online import run_online

    # Record; Ctrl-C (SIGINT to this process) after the first episode goes through the signal.signal
    # fallback and saves the open episode as interrupted.
    data = tmp_path / "data"
    sent = threading.Event()

    def on_episode(_summary: object) -> None:
        if not sent.is_set():
            sent.set()
            threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()

    result = record(
        RecordConfig(out=data, game=GAME, emulator="retro", policy="random", episodes=50, max_steps=40, port=0,
                     progress=False),
        on_episode=on_episode,
    )  # fmt: skip
    assert result.interrupted and 1 <= len(result.episodes) < 50
    files = sorted(data.glob("*.h5"))
    assert files and all(check(f) == [] for f in files)
    with EpisodeReader(files[0]) as ep:
        assert ep.n_steps > 0

    # Train offline: config, metrics and checkpoints are written without fsync-ing their folders.
    run = tmp_path / "run"
    cfg = TrainConfig(files=tuple(map(str, files)), updates=4, batch_size=8, checkpoint_every=2, device="cpu",
                      preprocess=PreprocessConfig(height=36, width=36), cache_dir=str(tmp_path / "cache"))  # fmt: skip
    trained = train_offline(cfg, run, progress=False, tensorboard=False)
    assert trained.updates == 4 and load_checkpoint(trained.checkpoint)["updates"] == 4

    # Online: its signal handlers and its clients take the same fallbacks; the budget ends it.
    online = run_online(OnlineConfig(
        run_dir=str(run), emulator="retro", steps=30, max_steps=1000, port=0, tensorboard=False, progress=False,
        checkpoint_every=1000, device="cpu",  # type: ignore[arg-type]
    ))  # fmt: skip
    assert online.total_env_steps >= 30 and not online.interrupted
    (ep_path,) = sorted((run / "online").glob("*.h5"))
    with EpisodeReader(ep_path) as ep:
        assert ep.end_reason is EndReason.BUDGET
    assert latest_checkpoint(run) == online.checkpoint
