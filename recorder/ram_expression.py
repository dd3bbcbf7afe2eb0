"""Composed RAM variables: an arithmetic expression over other variables, written in a profile.

Games keep many values in more than one place: a position as a page byte and an
offset byte (``x_page * 256 + x_pixel``), a score as binary-coded decimal digits
spread over bytes that need not be adjacent (Space Invaders keeps its four digits at
0xE6 and 0xE8), a flag as one bit of a byte (``status & 0x80``). A profile writes
such a value as ``name = { value = "EXPRESSION" }`` (docs/profiles.md, issue 9 item 1),
with no code of the user's own.

The grammar is a small, closed part of Python's: integers, variable names,
``+ - * // % & | ^ << >>``, unary minus, parentheses, and ``bcd(b1, b2, ...)``,
which reads each argument as one byte holding two decimal digits (its low 8 bits,
high nibble the tens) and joins them, most significant first: ``bcd(0x12, 0x34)``
is 1234. The text is parsed once with :mod:`ast` and every node is checked
against that list, then compiled to nested closures; nothing is ever passed to
``eval``, so a profile (which episode files carry, and users share) cannot run code.

The same closures evaluate a whole column at once when the values are int64 numpy arrays, one
entry per RAM row (``GameProfile.read_rows``: the trainer reads ``lives`` from every stored step).
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["ExpressionError", "RamExpression", "bcd", "parse_expression"]

#: Longest expression text accepted: a profile is configuration, and every step evaluates it.
MAX_EXPRESSION_CHARS = 256

_BINARY: dict[type[ast.operator], Callable[[int, int], int]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.BitAnd: operator.and_,
    ast.BitOr: operator.or_,
    ast.BitXor: operator.xor,
    ast.LShift: operator.lshift,
    ast.RShift: operator.rshift,
}

Evaluator = Callable[[Mapping[str, int]], int]


def bcd(*digit_bytes: int) -> int:
    """Decimal value of binary-coded-decimal bytes, most significant first (two digits a byte)."""
    value = 0
    for byte in digit_bytes:
        low = byte & 0xFF  # not `&=`: a column of values (numpy) would change in place
        value = value * 100 + (low >> 4) * 10 + (low & 0x0F)
    return value


class ExpressionError(ValueError):
    """The text is not an expression of the allowed grammar (the profile parser names the variable)."""


@dataclass(frozen=True)
class RamExpression:
    """A parsed expression: its text, the names it reads, and ``evaluate(values)``.

    Equal texts make equal expressions (the compiled closures are not compared), so profiles
    parsed twice from one text are equal.
    """

    text: str
    names: tuple[str, ...]
    evaluate: Evaluator = field(compare=False, repr=False)


def parse_expression(text: str) -> RamExpression:
    """Parse and compile ``text``; ExpressionError says what is not allowed."""
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(f"is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise ExpressionError(f"is not an expression ({text!r})") from None
    names: list[str] = []
    evaluate = _compile(tree.body, names)
    return RamExpression(text, tuple(dict.fromkeys(names)), evaluate)


def _compile(node: ast.expr, names: list[str]) -> Evaluator:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        constant = node.value
        return lambda values: constant
    if isinstance(node, ast.Name):
        name = node.id
        names.append(name)
        return lambda values: values[name]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _compile(node.operand, names)
        return lambda values: -inner(values)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        op = _BINARY[type(node.op)]
        left, right = _compile(node.left, names), _compile(node.right, names)
        if isinstance(node.op, ast.FloorDiv | ast.Mod):
            # A zero divisor from RAM would stop the recorder mid-episode; x // 0 is 0 here.
            return lambda values: _safe_divide(op, left(values), right(values))
        if isinstance(node.op, ast.LShift | ast.RShift) and not (
            isinstance(node.right, ast.Constant) and type(node.right.value) is int and 0 <= node.right.value <= 64
        ):
            raise ExpressionError("shifts only by a constant 0..64")
        return lambda values: op(left(values), right(values))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "bcd"
        and not node.keywords
        and node.args
    ):
        parts = [_compile(arg, names) for arg in node.args]
        return lambda values: bcd(*(part(values) for part in parts))
    shown = ast.unparse(node)
    raise ExpressionError(
        f"uses {shown!r}, which is not allowed: write integers, variable names, + - * // % & | ^ << >>, "
        "parentheses and bcd(...)"
    )


def _safe_divide(op: Callable[[Any, Any], Any], a: Any, b: Any) -> Any:
    if isinstance(b, np.ndarray):  # a column of values, one per RAM row (GameProfile.read_rows)
        zero = b == 0
        return np.where(zero, 0, op(a, np.where(zero, 1, b)))
    return 0 if b == 0 else op(a, b)
