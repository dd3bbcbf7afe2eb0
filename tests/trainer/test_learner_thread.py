"""The online learner thread runs at a lower CPU priority than the actors (issue 13 item 4)."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from dataset.errors import ConfigError
from trainer.config import OnlineConfig
from trainer.learner_thread import lower_thread_priority


def test_lower_thread_priority_changes_only_the_calling_thread() -> None:
    before = os.getpriority(os.PRIO_PROCESS, 0)
    seen: dict[str, object] = {}

    def learner() -> None:
        seen["lowered"] = lower_thread_priority(3)
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    t = threading.Thread(target=learner)
    t.start()
    t.join()
    if sys.platform.startswith("linux"):
        assert seen == {"lowered": True, "nice": min(19, before + 3)}
    else:  # the call would change the whole process there: it is not made
        assert seen == {"lowered": False, "nice": before}
    assert os.getpriority(os.PRIO_PROCESS, 0) == before  # the main thread (the actors' loop) is untouched
    assert lower_thread_priority(0) is False


def test_learner_nice_is_bounded() -> None:
    assert OnlineConfig(run_dir="r", learner_nice=0).learner_nice == 0
    with pytest.raises(ConfigError, match="--learner-nice 20 must lie in"):
        OnlineConfig(run_dir="r", learner_nice=20)
