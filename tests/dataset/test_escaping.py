"""printable(): client text is escaped before it reaches a log or a terminal (issue 11 item 5)."""

from __future__ import annotations

import pytest

from dataset.escaping import printable


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("evil\nFAKE 12:00:00 INFO ok", "evil\\nFAKE 12:00:00 INFO ok"),  # a forged log line
        ("a\r\n\tb", "a\\r\\n\\tb"),
        ("\x1b[2J\x1b]0;pwned\x07", "\\x1b[2J\\x1b]0;pwned\\x07"),  # clear screen, set the window title
        ("\x9b31m", "\\x9b31m"),  # the one-byte C1 CSI
        ("nul\x00del\x7f", "nul\\x00del\\x7f"),
        ("\u202egnp.exe", "\\u202egnp.exe"),  # a right-to-left override
        ("line\u2028para\u2029", "line\\u2028para\\u2029"),
        ("\U000e0041tag", "\\U000e0041tag"),  # an invisible tag character
    ],
)
def test_control_and_format_characters_are_escaped(text: str, shown: str) -> None:
    assert printable(text) == shown
    assert printable(text).isprintable()


def test_printable_text_is_kept_as_it_is() -> None:
    for text in ("Sonic The Hedgehog 2 (W) (REV01)", "Sönic ソニック 🦔", "C:\\roms\\sonic.md", "", "a b"):
        assert printable(text) == text


def test_any_object_is_shown_by_its_str() -> None:
    assert printable(ValueError("bad\nname")) == "bad\\nname"
    assert printable(42) == "42"
