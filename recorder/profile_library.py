"""Where game profiles are found: the one lookup every command uses (issue 9, item 2).

A :class:`ProfileLibrary` is an ordered list of places; the first that holds a
profile wins. The order, highest first (docs/profiles.md, "Where profiles are found"):

1. **pinned** profiles: a ``.toml`` path given to ``--game``, or the profile a
   training run stored (``sonic-train online`` and ``eval`` play the run's own);
2. the folder given to ``--profiles DIR``;
3. the folders in the environment variable ``SONIC_RL_PROFILES`` (separated like
   ``PATH``: ``:`` on Linux and macOS, ``;`` on Windows);
4. the user's profile folder, :func:`user_profile_folder`
   (``~/.config/sonic-rl/profiles``, ``%APPDATA%\\sonic-rl\\profiles`` on Windows);
5. the profiles shipped in ``recorder/profiles/``.

A folder holds ``<id>.toml`` files whose ``id`` equals the file name. Ids match
case-insensitively, ``-v0`` optional, so a user's ``SonicTheHedgehog2-Genesis-v0.toml``
shadows the shipped one. Matching a client's ROM by hash searches the same places in
the same order. :meth:`ProfileLibrary.get` takes ids only, never a path: it is what a
client's HELLO is looked up with, and a client must not make the recorder read files.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from dataset.errors import ProfileError
from recorder.profile import GameProfile, normalize_rom_hash, parse_profile

__all__ = ["ENV_VAR", "PROFILES_HELP", "ProfileFolder", "ProfileLibrary", "is_profile_path", "user_profile_folder"]

log = logging.getLogger("sonic_rl.profiles")

#: Folders of user profiles, separated by ``os.pathsep``.
ENV_VAR = "SONIC_RL_PROFILES"

#: The help of every command's ``--profiles DIR``.
PROFILES_HELP = (
    "Folder of your own game profiles (<id>.toml), searched before the folders in SONIC_RL_PROFILES, your "
    "profile folder (~/.config/sonic-rl/profiles; %APPDATA%\\sonic-rl\\profiles on Windows) and the shipped ones."
)

_SHIPPED_PACKAGE = "recorder.profiles"
_ROM_SUFFIXES = (".md", ".gen", ".bin", ".smd", ".zip", ".nes", ".sfc", ".smc", ".a26", ".gb", ".gbc", ".sms")


def user_profile_folder(env: Mapping[str, str] | None = None) -> Path:
    """The user's own profile folder (it need not exist).

    Windows: ``%APPDATA%\\sonic-rl\\profiles`` (the roaming settings folder). Elsewhere the XDG
    base directory rule: ``$XDG_CONFIG_HOME/sonic-rl/profiles``, else ``~/.config/sonic-rl/profiles``
    (macOS too, where command-line tools such as git keep their settings there).
    """
    env = os.environ if env is None else env
    if sys.platform == "win32" and env.get("APPDATA"):
        return Path(env["APPDATA"]) / "sonic-rl" / "profiles"
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "sonic-rl" / "profiles"


def is_profile_path(name: str) -> bool:
    """True for what a user means as a file (``my/game.toml``), not a profile id."""
    return name.strip().lower().endswith(".toml") or "/" in name or "\\" in name


def _key(profile_id: str) -> str:
    return profile_id.strip().lower().removesuffix("-v0")


def _rom_name_key(name: str) -> str:
    text = name.strip().lower()
    for suffix in _ROM_SUFFIXES:
        text = text.removesuffix(suffix)
    return text


@dataclass(frozen=True)
class ProfileFolder:
    """One place profiles are looked up in, and what put it on the list (for messages)."""

    origin: str  # "--profiles", "SONIC_RL_PROFILES", "user folder", "shipped"
    root: Path | Traversable

    def files(self) -> dict[str, Traversable | Path]:
        """{id from the file name: file}; a missing folder holds none."""
        try:
            if not self.root.is_dir():
                return {}
            entries = list(self.root.iterdir())
        except OSError as exc:
            log.warning("cannot read profile folder %s: %s", self.root, exc)
            return {}
        return {e.name[: -len(".toml")]: e for e in sorted(entries, key=lambda e: e.name) if e.name.endswith(".toml")}

    def describe(self) -> str:
        return f"{self.root} ({self.origin})"


class ProfileLibrary:
    """Profiles by id or ROM, from pinned profiles, then folders in order of precedence."""

    def __init__(self, folders: Sequence[ProfileFolder], pinned: Sequence[GameProfile] = ()) -> None:
        self.folders = tuple(folders)
        self.pinned = tuple(pinned)
        self._parsed: dict[str, GameProfile] = {}

    @classmethod
    def default(
        cls, profiles: Path | str | None = None, *, env: Mapping[str, str] | None = None
    ) -> ProfileLibrary:
        """``--profiles`` (if given), then ``SONIC_RL_PROFILES``, the user folder, the shipped profiles."""
        env = os.environ if env is None else env
        folders = []
        if profiles:
            path = Path(profiles).expanduser()
            if not path.is_dir():
                raise ProfileError(f"--profiles {profiles}: no such folder")
            folders.append(ProfileFolder("--profiles", path))
        for part in env.get(ENV_VAR, "").split(os.pathsep):
            if part.strip():
                folders.append(ProfileFolder(ENV_VAR, Path(part.strip()).expanduser()))
        folders.append(ProfileFolder("user folder", user_profile_folder(env)))
        folders.append(ProfileFolder("shipped", resources.files(_SHIPPED_PACKAGE)))
        return cls(folders)

    def pin(self, profile: GameProfile) -> ProfileLibrary:
        """A library where ``profile`` comes before everything else (same id: it wins)."""
        others = [p for p in self.pinned if _key(p.id) != _key(profile.id)]
        return ProfileLibrary(self.folders, (profile, *others))

    # -- lookups -------------------------------------------------------------------------
    def resolve(self, name_or_path: str) -> GameProfile:
        """What a user typed after ``--game``: a ``.toml`` file, or an id looked up with :meth:`get`."""
        if is_profile_path(name_or_path):
            path = Path(name_or_path).expanduser()
            if not path.is_file():
                raise ProfileError(f"profile file {name_or_path} does not exist")
            return self._load(path)
        return self.get(name_or_path)

    def get(self, profile_id: str) -> GameProfile:
        """The profile with this id (case-insensitive, ``-v0`` optional); never reads a path."""
        found = self._find(profile_id)
        if found is None:
            raise ProfileError(self._unknown(profile_id))
        return found

    def find_for_rom(self, rom_name: str, rom_hash: str) -> GameProfile | None:
        """The first profile that fits a client's ROM: by SHA-1 (case-insensitive, "SHA1:" stripped).

        The name is used only when the client sends no hash: another revision of a
        game under the same name may keep its variables elsewhere in RAM.
        """
        digest = normalize_rom_hash(rom_hash)
        name = _rom_name_key(rom_name)
        for profile in self._all(skip_broken=True):
            if digest:
                if digest in profile.rom_hashes:
                    return profile
            elif name and name in {_rom_name_key(n) for n in profile.rom_names}:
                return profile
        return None

    def ids(self) -> list[str]:
        """Every id found, each once (the one that wins), sorted."""
        seen: dict[str, str] = {}
        for profile in self.pinned:
            seen.setdefault(_key(profile.id), profile.id)
        for folder in self.folders:
            for file_id in folder.files():
                seen.setdefault(_key(file_id), file_id)
        return sorted(seen.values())

    def where(self, profile_id: str) -> str:
        """Where the profile with this id comes from: a file path, or "pinned"; "" if nowhere."""
        key = _key(profile_id)
        if any(_key(p.id) == key for p in self.pinned):
            return "pinned"
        for folder in self.folders:
            for file_id, entry in folder.files().items():
                if _key(file_id) == key:
                    return str(entry)
        return ""

    def describe(self) -> list[str]:
        """The places searched, in order, one line each (``sonic-rec profiles``, error messages)."""
        lines = [f"{p.id} (pinned)" for p in self.pinned]
        return lines + [folder.describe() for folder in self.folders]

    # -- internals -----------------------------------------------------------------------
    def _find(self, profile_id: str) -> GameProfile | None:
        key = _key(profile_id)
        if not key or is_profile_path(profile_id):
            return None
        for profile in self.pinned:
            if _key(profile.id) == key:
                return profile
        for folder in self.folders:
            for file_id, entry in folder.files().items():
                if _key(file_id) == key:
                    return self._load(entry, expect_id=file_id)
        return None

    def _all(self, *, skip_broken: bool) -> Iterator[GameProfile]:
        yield from self.pinned
        seen = {_key(p.id) for p in self.pinned}
        for folder in self.folders:
            for file_id, entry in folder.files().items():
                if _key(file_id) in seen:
                    continue  # shadowed by a profile of higher precedence
                seen.add(_key(file_id))
                try:
                    yield self._load(entry, expect_id=file_id)
                except ProfileError as exc:
                    if not skip_broken:
                        raise
                    # One broken file must not hide every other game from ROM matching.
                    log.warning("skipping a profile that does not load: %s", exc)

    def _load(self, entry: Path | Traversable, expect_id: str | None = None) -> GameProfile:
        source = str(entry)
        if source not in self._parsed:
            try:
                text = entry.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ProfileError(f"cannot read profile {source}: {exc}") from None
            profile = parse_profile(text, source)
            if expect_id is not None and profile.id != expect_id:
                raise ProfileError(
                    f"{source} declares id {profile.id!r}; a profile in a folder must be named <id>.toml"
                )
            self._parsed[source] = profile
        return self._parsed[source]

    def _unknown(self, profile_id: str) -> str:
        if is_profile_path(profile_id):
            return f"{profile_id!r} is a path, not a profile id; profiles are looked up by id here"
        known = ", ".join(self.ids()) or "none"
        places = "; ".join(self.describe())
        return f"unknown game {profile_id!r}; known: {known} (searched {places}; or give a .toml path)"
