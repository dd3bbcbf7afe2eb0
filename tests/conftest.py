"""Settings every test shares: no user profile folder, and tests marked ``cuda`` skip cleanly, with
the reason shown, where there is no CUDA GPU."""

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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not any(item.get_closest_marker("cuda") for item in items):
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False here); "
                                   "benchmarks/gpu_check.sh runs these on one")  # fmt: skip
    for item in items:
        if item.get_closest_marker("cuda"):
            item.add_marker(skip)
