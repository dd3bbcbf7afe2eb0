"""The one profile lookup: pinned, --profiles, SONIC_RL_PROFILES, the user folder, the shipped profiles."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from dataset.errors import ProfileError
from recorder.profile import find_profile_for_rom, load_profile, parse_profile
from recorder.profile_library import ENV_VAR, ProfileLibrary, user_profile_folder

AIRSTRIKER = "Airstriker-Genesis-v0"
AIRSTRIKER_SHA = "a8be7b0ca850119b167f9644e6a4a22e983d61a4"
SHIPPED_TEXT = load_profile(AIRSTRIKER).text


def user_text(profile_id: str, max_steps: int, sha: str | None = None) -> str:
    """The Airstriker profile under another id (and ROM hash); ``max_steps`` tells the copies apart."""
    text = SHIPPED_TEXT.replace(f'id = "{AIRSTRIKER}"', f'id = "{profile_id}"', 1)
    text = text.replace("max_steps = 4500", f"max_steps = {max_steps}", 1)
    if sha is not None:
        text = text.replace(AIRSTRIKER_SHA, sha, 1)
    return text


def write(folder: Path, profile_id: str, max_steps: int, sha: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{profile_id}.toml"
    path.write_text(user_text(profile_id, max_steps, sha))
    return path


def test_precedence_pinned_then_option_then_env_then_user_then_shipped(tmp_path: Path) -> None:
    option, env_a, env_b, user = (tmp_path / n for n in ("option", "env_a", "env_b", "config"))
    for max_steps, folder in enumerate((option, env_a, env_b, user / "sonic-rl" / "profiles"), start=10):
        write(folder, AIRSTRIKER, max_steps)
    env = {ENV_VAR: f"{env_a}{os.pathsep}{env_b}", "XDG_CONFIG_HOME": str(user), "APPDATA": str(user)}
    library = ProfileLibrary.default(option, env=env)
    assert [f.origin for f in library.folders] == ["--profiles", ENV_VAR, ENV_VAR, "user folder", "shipped"]
    assert library.get(AIRSTRIKER).max_steps == 10
    pinned = parse_profile(user_text(AIRSTRIKER, 99))
    assert library.pin(pinned).get("airstriker-genesis").max_steps == 99  # case and -v0 do not matter
    # Take each place away in turn: the next one answers.
    assert ProfileLibrary.default(env=env).get(AIRSTRIKER).max_steps == 11
    assert ProfileLibrary.default(env={**env, ENV_VAR: str(env_b)}).get(AIRSTRIKER).max_steps == 12
    assert ProfileLibrary.default(env={**env, ENV_VAR: ""}).get(AIRSTRIKER).max_steps == 13
    assert ProfileLibrary.default(env={"XDG_CONFIG_HOME": str(tmp_path / "none")}).get(AIRSTRIKER).max_steps == 4500
    assert library.where(AIRSTRIKER) == str(option / f"{AIRSTRIKER}.toml")


def test_user_profiles_are_found_by_id_and_by_rom_hash(tmp_path: Path) -> None:
    write(tmp_path, "MyGame-Genesis", 77, sha="ab" * 20)
    library = ProfileLibrary.default(tmp_path, env={})
    assert library.get("mygame-genesis").id == "MyGame-Genesis"
    assert library.find_for_rom("whatever", "SHA1:" + "AB" * 20).id == "MyGame-Genesis"  # type: ignore[union-attr]
    assert library.find_for_rom("x", AIRSTRIKER_SHA).id == AIRSTRIKER  # type: ignore[union-attr]
    assert "MyGame-Genesis" in library.ids() and AIRSTRIKER in library.ids()
    # A profile a run stored (pinned) is matched by its ROM too, before any folder.
    pinned = parse_profile(user_text("Stored", 5, sha="cd" * 20))
    assert library.pin(pinned).find_for_rom("", "cd" * 20).id == "Stored"  # type: ignore[union-attr]


def test_broken_user_profile_is_named_when_asked_for_and_skipped_for_rom_matching(tmp_path: Path) -> None:
    (tmp_path / "Broken.toml").write_text("id = 'Broken'\n[[")
    write(tmp_path, "Renamed", 5).rename(tmp_path / "Other.toml")
    library = ProfileLibrary.default(tmp_path, env={})
    with pytest.raises(ProfileError, match=r"Broken.toml: not valid TOML"):
        library.get("Broken")
    with pytest.raises(ProfileError, match=r"Other.toml declares id 'Renamed'.*named <id>.toml"):
        library.get("Other")
    assert library.find_for_rom("", AIRSTRIKER_SHA).id == AIRSTRIKER  # type: ignore[union-attr]


def test_ids_only_no_paths_and_unknown_games_say_where_they_looked(tmp_path: Path) -> None:
    path = write(tmp_path, "OnDisk", 5)
    library = ProfileLibrary.default(env={})
    assert library.resolve(str(path)).id == "OnDisk"  # a user's --game may be a path
    with pytest.raises(ProfileError, match="is a path, not a profile id"):
        library.get(str(path))  # a client's HELLO may not
    with pytest.raises(ProfileError) as info:
        library.get("SuperMarioBros-Nes")
    message = str(info.value)
    assert "unknown game 'SuperMarioBros-Nes'" in message and AIRSTRIKER in message
    assert "(user folder)" in message and "(shipped)" in message
    with pytest.raises(ProfileError, match=r"--profiles .*: no such folder"):
        ProfileLibrary.default(tmp_path / "missing", env={})


def test_user_profile_folder_per_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    assert user_profile_folder({"APPDATA": r"C:\Users\me\AppData\Roaming"}) == Path(
        r"C:\Users\me\AppData\Roaming", "sonic-rl", "profiles"
    )
    monkeypatch.setattr(sys, "platform", "linux")
    assert user_profile_folder({"XDG_CONFIG_HOME": "/cfg"}) == Path("/cfg/sonic-rl/profiles")
    assert user_profile_folder({}) == Path.home() / ".config" / "sonic-rl" / "profiles"


def test_load_profile_and_rom_matching_use_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "FromEnv", 42, sha="ef" * 20)
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert load_profile("fromenv").max_steps == 42
    assert find_profile_for_rom("", "ef" * 20).id == "FromEnv"  # type: ignore[union-attr]
