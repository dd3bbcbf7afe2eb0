"""The one game / action-set compatibility check."""

from __future__ import annotations

import pytest

from dataset.errors import ConfigError, DatasetError
from trainer.game_spec import GameSpec

RUN = GameSpec("Air", ("noop", "fire"), ("B", "A"), 4)


def test_fields_are_compared_in_order_and_unknown_ones_are_skipped() -> None:
    assert RUN.mismatch(RUN) is None
    assert RUN.mismatch(GameSpec("Sonic", ("jump",), ("B",), 2)) == "games"
    assert RUN.mismatch(GameSpec("Air", ("fire",))) == "action sets"
    assert RUN.mismatch(GameSpec("Air", ("noop", "fire"), ("C",))) == "button layouts"
    assert RUN.mismatch(GameSpec("Air", ("noop", "fire"), ("B", "A"), 2)) == "frame skips"
    # A player of the run needs the game and the action set only.
    assert RUN.playing().mismatch(GameSpec("Air", ("noop", "fire"), ("C",), 1)) is None


def test_the_message_names_both_sides_and_the_fix_in_one_line() -> None:
    with pytest.raises(DatasetError) as err:
        RUN.require_match(GameSpec("Sonic", ("jump",)), mine="this run plays", theirs="x.h5 holds",
                          fix="move it away", error=DatasetError)  # fmt: skip
    assert str(err.value) == (
        "x.h5 holds Sonic with actions ['jump'] but this run plays Air with actions ['noop', 'fire'] "
        "(different games); move it away"
    )
    with pytest.raises(ConfigError, match=r"frame skip 2 but .* frame skip 4 \(different frame skips\)"):
        RUN.require_match(GameSpec("Air", ("noop", "fire"), ("B", "A"), 2), mine="a", theirs="b", fix="c",
                          error=ConfigError)  # fmt: skip
