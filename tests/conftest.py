"""Settings every test shares."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def no_user_profiles(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tests see the shipped profiles only: a developer's own profile folder (or SONIC_RL_PROFILES)
    could shadow a shipped id and change what a test records. Child processes inherit this."""
    empty = tmp_path_factory.mktemp("config")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("SONIC_RL_PROFILES", raising=False)
        mp.setenv("XDG_CONFIG_HOME", str(empty))  # recorder.profile_library.user_profile_folder
        mp.setenv("APPDATA", str(empty))  # the same on Windows
        yield
