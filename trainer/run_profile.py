"""The game profile a training run plays: stored in the run, so nothing has to be installed (issue 9).

``sonic-train offline`` writes the profile its episode files were recorded with
(the first file's stored TOML; a dataset is one game and action set, checked by
``GameSpec``) to ``RUN/profile.toml``, and every checkpoint carries the same text.
``online --resume`` and ``eval`` play that profile: it judges rewards and episode
ends exactly as the training data was judged, even after the user's own profile
file is edited, moved or deleted. A run saved before profiles were stored falls
back to the profile lookup (``recorder.profile_library``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dataset.atomic import atomic_write_text
from dataset.errors import ConfigError, ProfileError
from recorder.profile import GameProfile, parse_profile
from recorder.profile_library import ProfileLibrary
from trainer.game_spec import GameSpec

__all__ = ["RUN_PROFILE", "load_run_profile", "save_run_profile"]

#: The profile's TOML text, in the run folder.
RUN_PROFILE = "profile.toml"


def save_run_profile(run_dir: Path, text: str) -> None:
    """Write ``RUN/profile.toml`` unless the run has one (a user may have edited it on purpose)."""
    path = run_dir / RUN_PROFILE
    if text and not path.exists():
        atomic_write_text(path, text)


def load_run_profile(
    run_dir: Path, dataset: Mapping[str, Any], library: ProfileLibrary
) -> tuple[GameProfile, ProfileLibrary]:
    """The profile run ``run_dir`` plays, and ``library`` with it pinned first.

    ``dataset`` is a checkpoint's ``dataset`` entry. In order: ``RUN/profile.toml``,
    the text stored in the checkpoint, the profile of the run's game id in ``library``.
    It must have the game and action set the network was trained on.
    """
    spec = GameSpec.of_checkpoint(dataset)
    path = run_dir / RUN_PROFILE
    stored = str(dataset.get("profile_toml", ""))
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the run's profile {path}: {exc}") from None
        profile, where = parse_profile(text, str(path)), f"the run's {RUN_PROFILE}"
    elif stored:
        profile, where = parse_profile(stored, f"the profile stored in {run_dir}'s checkpoint"), "its checkpoint"
    else:
        try:
            profile = library.get(spec.game)
        except ProfileError as exc:
            raise ConfigError(
                f"{run_dir} was saved before runs stored their profile, and {exc}; pass --profiles DIR"
            ) from None
        where = "the installed profile"
    spec.require_match(
        GameSpec.of_profile(profile), mine="the run was trained on", theirs=f"{where} has", error=ConfigError,
        fix=f"restore the profile the run was trained with ({RUN_PROFILE} in the run folder)",
    )  # fmt: skip
    return profile, library.pin(profile)
