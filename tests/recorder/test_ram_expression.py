"""Composed-variable expressions: the closed grammar, bcd, and what is refused."""

from __future__ import annotations

import pytest

from recorder.ram_expression import ExpressionError, bcd, parse_expression


def test_bcd_joins_two_digits_per_byte_most_significant_first() -> None:
    assert bcd(0x12, 0x34) == 1234
    assert bcd(0x09) == 9
    assert bcd(0x01, 0x00, 0x50) == 10050
    assert bcd(0x1_99) == 99  # one byte per argument: the low 8 bits


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("x_page * 256 + x_pixel", {"x_page": 2, "x_pixel": 0x10}, 528),
        ("bcd(hi, lo)", {"hi": 0x07, "lo": 0x42}, 742),
        ("bcd(hi & 0x0F, lo)", {"hi": 0xF3, "lo": 0x21}, 321),  # ALE Breakout: hundreds in the low nibble
        ("status & 0x80", {"status": 0x81}, 0x80),
        ("(a - b) // 2 % 7", {"a": 40, "b": 10}, 1),
        ("-a + (b << 4) | 1 ^ 3", {"a": 1, "b": 1}, (-1 + (1 << 4)) | (1 ^ 3)),
        ("a // b + a % b", {"a": 5, "b": 0}, 0),  # a zero from RAM must not stop the recorder
        ("42", {}, 42),
    ],
)
def test_expressions_evaluate(text: str, values: dict[str, int], expected: int) -> None:
    expr = parse_expression(text)
    assert expr.evaluate(values) == expected
    assert set(expr.names) == set(values)


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('true')",
        "a.real",
        "a ** 2",
        "a if b else c",
        "a < b",
        "lambda: 1",
        "[a]",
        "1.5 * a",
        "'text'",
        "abs(a)",
        "bcd()",
        "a << b",  # a shift by a RAM value could build an enormous integer every step
        "a +",
        "x" * 300,
    ],
)
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(ExpressionError):
        parse_expression(text)
