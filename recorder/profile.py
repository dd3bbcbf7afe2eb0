"""Game profiles: one TOML file per game, read with the stdlib ``tomllib``.

A profile says everything the recorder must know about a game and nothing about
an emulator: its console (BizHawk's system id), where its RAM variables live (one
address, or an expression composed of others), how reward and episode end are
judged from RAM, the discrete action set (button combinations), the games of the
embedded emulators that can run it (``[retro]``, ``[ale]``, both optional), and which
ROMs it fits. ``docs/profiles.md`` documents the schema field by field; the shipped
files are ``recorder/profiles/<id>.toml``.

RAM given to a profile is the console's main RAM as the client sends it, of the
profile's ``ram_size`` and ``byte_order``, both defaulting to the console's
(``recorder.console_system``). The Genesis variables and rules mirror stable-retro's
integration files (``data.json``, ``scenario.json``, ``script.lua``), the Atari 2600
ones ALE's game settings; the tests use both as ground truth.
"""

from __future__ import annotations

import enum
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from dataset.episode import EndReason
from dataset.errors import ProfileError
from recorder.action_set import ActionSet, normalize_button
from recorder.console_system import GENESIS_BUTTONS, find_system, normalize_system_id
from recorder.ram_expression import ExpressionError, RamExpression, parse_expression

__all__ = [
    "GENESIS_BUTTONS",
    "ComposedVariable",
    "ConditionOp",
    "EndCondition",
    "EndRule",
    "EpisodeJudge",
    "ExplorerSpec",
    "GameProfile",
    "RamVariable",
    "RewardKind",
    "RewardSpec",
    "find_profile_for_rom",
    "list_profiles",
    "load_profile",
    "normalize_rom_hash",
    "parse_profile",
]

#: numpy dtype strings a variable may have (those stable-retro's data.json uses, plus signed);
#: a multi-byte type without "<" or ">" takes the profile's byte_order.
_DTYPES = frozenset(
    f"{order}{kind}{size}" for order in ("<", ">", "") for kind in "ui" for size in (2, 4)
) | {"|u1", "|i1", "u1", "i1"}

_BYTE_ORDERS = {"big": ">", "little": "<"}

_PROFILE_PACKAGE = "recorder.profiles"


def normalize_rom_hash(rom_hash: str) -> str:
    """Lower-case hex SHA-1; BizHawk's ``GameInfo.Hash`` may be upper case and "SHA1:"-prefixed."""
    text = rom_hash.strip().lower()
    if text.startswith("sha1:"):
        text = text[len("sha1:"):]
    return text


@dataclass(frozen=True)
class RamVariable:
    """One value in main RAM. ``address`` is the offset in main RAM (0 .. ram_size-1).

    Profiles may write a CPU's bus address (0xFFB008 for the Genesis, as stable-retro's
    data.json does; $80-$FF for the Atari 2600); the loader keeps ``address & (ram_size - 1)``,
    the offset in the RAM the client sends.
    """

    name: str
    address: int
    dtype: str  # numpy dtype string with its byte order resolved: ">u2", "|u1", ">u4", "<u2", ">i2" ...

    def read(self, ram: np.ndarray) -> int:
        """The variable's value in ``ram`` (uint8 array as the client sent it)."""
        if not ram.flags.c_contiguous:  # e.g. a byte-swapped view of stable-retro's RAM
            ram = np.ascontiguousarray(ram)
        return int(np.frombuffer(ram, dtype=self.dtype, count=1, offset=self.address)[0])

    def read_rows(self, rams: np.ndarray) -> np.ndarray:
        """The variable's value in every row of ``rams`` ((n, ram_size) uint8), as int64."""
        size = np.dtype(self.dtype).itemsize
        cells = np.ascontiguousarray(rams[:, self.address : self.address + size])
        return cells.view(self.dtype)[:, 0].astype(np.int64)


@dataclass(frozen=True)
class ComposedVariable:
    """A value computed from other variables (``x_page * 256 + x_pixel``, ``bcd(hi, lo)``)."""

    name: str
    expression: RamExpression

    def evaluate(self, values: Mapping[str, int]) -> int:
        return int(self.expression.evaluate(values))


class ConditionOp(enum.Enum):
    """Tests an end rule may apply to a variable (names follow stable-retro's scenario.json ops)."""

    EQUAL = "equal"            # value == reference
    NOT_EQUAL = "not-equal"    # value != reference
    LESS = "less-than"         # value < reference
    GREATER = "greater-than"   # value > reference
    ZERO = "zero"              # value == 0
    NONZERO = "nonzero"        # value != 0
    DECREASED = "decreased"    # value < value at the previous step (a lost life)
    INCREASED = "increased"    # value > value at the previous step
    CHANGED = "changed"        # value != value at the episode start (a new zone or act)
    PROGRESS_COMPLETE = "progress-complete"  # the progress reward reached the level's end

_NEEDS_REFERENCE = {ConditionOp.EQUAL, ConditionOp.NOT_EQUAL, ConditionOp.LESS, ConditionOp.GREATER}


@dataclass(frozen=True)
class EndCondition:
    """``variable op reference``; ``variable`` is empty for PROGRESS_COMPLETE."""

    op: ConditionOp
    variable: str = ""
    reference: int = 0


@dataclass(frozen=True)
class EndRule:
    """An episode end: ``reason`` when all (or any) of ``conditions`` hold. Rules are tried in order.

    ``edge``: the rule ends an episode only on a step where it holds and did not hold on the step
    before (for the first step: in the episode's first RAM). A state that lasts, such as a death
    animation or a game-over screen, then ends one episode, not also each one begun during it
    (human mode goes on from where the last episode ended).
    """

    reason: EndReason
    conditions: tuple[EndCondition, ...]
    require_all: bool
    edge: bool = False


class RewardKind(enum.Enum):
    """How reward is computed from RAM."""

    DELTA = "delta"        # scale * (value now - value at the previous step); scenario.json style
    PROGRESS = "progress"  # Retro Contest: scale * change of clip(x - x0, 0, end - x0) / (end - x0)


@dataclass(frozen=True)
class RewardSpec:
    """The reward rule; see docs/profiles.md [reward]."""

    kind: RewardKind
    variable: str
    scale: float = 1.0
    # PROGRESS only: the finishing bonus of the Retro Contest, finish_bonus * (1 - frames/limit).
    finish_bonus: float = 0.0
    finish_bonus_frames: int = 0
    # PROGRESS only: the variables naming the level and each level's end value of ``variable``.
    level_key: tuple[str, ...] = ()
    level_end: tuple[tuple[tuple[int, ...], int], ...] = ()

    def end_for(self, key: tuple[int, ...]) -> int | None:
        for level, end in self.level_end:
            if level == key:
                return end
        return None


@dataclass(frozen=True)
class ExplorerSpec:
    """Hints for the scripted explorer (recorder.policy).

    ``forward``, ``jump`` and ``back`` are each a choice of *cycles*: a cycle is a
    tuple of action indices played in turn while it is held, so a game that fires
    only on a fresh press (Airstriker) can be explored with ("fire", "noop").
    """

    forward: tuple[tuple[int, ...], ...]
    jump: tuple[tuple[int, ...], ...] = ()
    back: tuple[tuple[int, ...], ...] = ()
    progress: str | None = None
    stuck_steps: int = 60
    back_steps: int = 12
    run_up_steps: int = 8
    jump_probability: float = 0.03
    jump_steps: tuple[int, int] = (3, 8)
    hold_steps: tuple[int, int] = (8, 30)


@dataclass(frozen=True)
class GameProfile:
    """A game, as ``recorder/profiles/<id>.toml`` describes it (schema: docs/profiles.md)."""

    id: str                     # file is <id>.toml; the stable-retro id or ALE name for shipped games
    name: str                   # human name
    system: str                 # BizHawk's system id: "GEN", "NES", "A26", ... (recorder.console_system)
    retro_game: str             # stable-retro id; "" when stable-retro cannot run the game
    retro_state: str            # default start state for stable-retro ("" for the game's default)
    rom_names: tuple[str, ...]
    rom_hashes: tuple[str, ...]  # lower-case hex sha1
    ram_size: int
    buttons: tuple[str, ...]    # the console's button names (player 1); actions use these
    actions: tuple[tuple[str, ...], ...]  # each action = buttons held
    action_names: tuple[str, ...]
    variables: tuple[RamVariable, ...]  # values at one address
    max_steps: int              # default episode step limit at frame skip 4
    text: str                   # the TOML source text (stored in every episode file)
    byte_order: str = "big"     # "big" | "little": multi-byte values in the RAM the client sends
    ale_game: str = ""          # ALE's ROM name ("breakout"); "" when ale-py cannot run the game
    #: Values computed from others, in an order where each comes after those it reads.
    composed: tuple[ComposedVariable, ...] = ()
    reward: RewardSpec | None = None
    end_rules: tuple[EndRule, ...] = ()
    explorer: ExplorerSpec | None = None
    frame_skip: int = 4          # default frames per step when the recorder is given none
    # Buttons that do the same as one in the action set (Sonic 2 jumps with A, B or C):
    # ActionSet.nearest reads a human's C as B.
    equivalent_buttons: tuple[tuple[str, str], ...] = ()

    def variable(self, name: str) -> RamVariable:
        """A variable at one address (a composed one has none: read it with ``read_variables``)."""
        for var in self.variables:
            if var.name == name:
                return var
        raise ProfileError(f"profile {self.id} has no RAM variable {name!r}")

    def read_variables(self, ram: np.ndarray) -> dict[str, int]:
        """Every variable's value in ``ram`` (``ram_size`` uint8 as the client sends it), composed ones too."""
        if not ram.flags.c_contiguous:
            ram = np.ascontiguousarray(ram)
        values = {var.name: var.read(ram) for var in self.variables}
        for var in self.composed:
            values[var.name] = var.evaluate(values)
        return values

    def has_variable(self, name: str) -> bool:
        """Whether ``name`` is one of the profile's variables, at one address or composed."""
        return any(var.name == name for var in (*self.variables, *self.composed))

    def read_rows(self, rams: np.ndarray, name: str) -> np.ndarray:
        """Variable ``name``, a RAM or a composed one, in every row of ``rams`` ((n, ram_size) uint8),
        as int64: ``read_variables(row)[name]`` for each row, evaluated column-wise. Only the
        variables ``name`` depends on are read."""
        plain = {var.name: var for var in self.variables}
        composed = {var.name: var for var in self.composed}
        if name in plain:
            return plain[name].read_rows(rams)
        if name not in composed:
            raise ProfileError(f"profile {self.id} has no variable {name!r}")
        needed, pending = {name}, [name]
        while pending:
            for dep in composed[pending.pop()].expression.names:
                if dep not in needed:
                    needed.add(dep)
                    if dep in composed:
                        pending.append(dep)
        values: dict[str, Any] = {n: plain[n].read_rows(rams) for n in needed if n in plain}
        for var in self.composed:  # dependency order (parse_profile sorts them so)
            if var.name in needed:
                column = np.asarray(var.expression.evaluate(values), dtype=np.int64)
                values[var.name] = np.broadcast_to(column, len(rams))
        return values[name]

    @property
    def embedded_emulators(self) -> tuple[str, ...]:
        """The embedded emulators ("retro", "ale") that can run this game; empty: BizHawk only."""
        return tuple(kind for kind, game in (("retro", self.retro_game), ("ale", self.ale_game)) if game)

    def embedded_game(self, emulator: str) -> str:
        """The game the embedded emulator ``emulator`` ("retro" or "ale") runs; ProfileError if it cannot."""
        section = {"retro": ("retro_game", "[retro] game", "stable-retro"), "ale": ("ale_game", "[ale] game", "ale-py")}
        if emulator not in section:
            raise ProfileError(f"there is no embedded emulator {emulator!r}; use retro or ale")
        field, key, label = section[emulator]
        game = str(getattr(self, field))
        if not game:
            runs = self.embedded_emulators
            elsewhere = f"use --emulator {runs[0]}" if runs else "play it on an external emulator client (BizHawk)"
            raise ProfileError(f"profile {self.id} names no {label} game ({key}); {elsewhere}")
        return game

    def action_set(self, button_names: Sequence[str]) -> ActionSet:
        """The action set as masks of a client's buttons (ProfileError if it lacks one)."""
        return ActionSet(self.id, self.actions, self.action_names, button_names, self.equivalent_buttons)

    def action_index(self, name: str) -> int:
        try:
            return self.action_names.index(name)
        except ValueError:
            raise ProfileError(
                f"profile {self.id} has no action {name!r}; its actions: {', '.join(self.action_names)}"
            ) from None

    def judge(self, frame_skip: int) -> EpisodeJudge:
        """A fresh per-episode judge of reward and terminal ends for a session's ``frame_skip``."""
        return EpisodeJudge(self, frame_skip)


class EpisodeJudge:
    """Per-episode reward and end state (value at start, previous values, step count).

    ``start`` with the first RAM of the episode, then ``step`` with the RAM after
    each step. The step limit is not judged here: the recorder truncates.
    """

    def __init__(self, profile: GameProfile, frame_skip: int) -> None:
        self.profile = profile
        #: Emulated frames per step: the session's, never the profile's default (a time bonus
        #: counts frames).
        self.frame_skip = frame_skip
        self._start: dict[str, int] = {}
        self._prev: dict[str, int] = {}
        self._steps = 0
        self._origin = 0
        self._end: int | None = None
        self._prev_progress = 0.0
        self._held: tuple[bool, ...] = ()  # per end rule: did it hold on the previous step (edge rules)

    def start(self, ram: np.ndarray) -> None:
        values = self.profile.read_variables(ram)
        self._start = values
        self._prev = values
        self._steps = 0
        self._prev_progress = 0.0
        spec = self.profile.reward
        if spec is not None and spec.kind is RewardKind.PROGRESS:
            # script.lua calc_progress: offset_x = -x and end_x = level_max_x - x at the first step.
            key = tuple(values[name] for name in spec.level_key)
            level_end = spec.end_for(key)
            if level_end is None:
                level = ", ".join(f"{n}={v}" for n, v in zip(spec.level_key, key, strict=True))
                raise ProfileError(
                    f"profile {self.profile.id} has no end {spec.variable} for the level at the "
                    f"start ({level}); add it to [reward.level_end] or start in a known level"
                )
            self._origin = values[spec.variable]
            self._end = max(level_end - self._origin, 1)
        self._held = tuple(self._rule_holds(rule, values) for rule in self.profile.end_rules)

    @property
    def progress(self) -> float:
        """Fraction of the level done, 0..1 (PROGRESS reward only; 0 otherwise)."""
        return self._prev_progress

    def step(self, ram: np.ndarray) -> tuple[float, EndReason | None]:
        if not self._start:
            raise ProfileError("EpisodeJudge.step called before start(); call start with the first RAM")
        values = self.profile.read_variables(ram)
        self._steps += 1
        reward = self._reward(values)
        reason = self._reason(values)
        self._prev = values
        return reward, reason

    def _reward(self, values: Mapping[str, int]) -> float:
        spec = self.profile.reward
        if spec is None:
            return 0.0
        if spec.kind is RewardKind.DELTA:
            return spec.scale * float(values[spec.variable] - self._prev[spec.variable])
        assert self._end is not None  # set by start() for PROGRESS
        # script.lua contest_reward: (progress - prev_progress) * 9000, plus the time bonus
        # (1 - clip(frame / 18000, 0, 1)) * 1000 once the end is reached.
        moved = min(max(values[spec.variable] - self._origin, 0), self._end)
        progress = moved / self._end
        reward = spec.scale * (progress - self._prev_progress)
        self._prev_progress = progress
        if progress >= 1.0 and spec.finish_bonus_frames > 0:
            frames = self._steps * self.frame_skip
            reward += spec.finish_bonus * (1.0 - min(max(frames / spec.finish_bonus_frames, 0.0), 1.0))
        return reward

    def _reason(self, values: Mapping[str, int]) -> EndReason | None:
        # Every rule is evaluated on every step, so an edge rule knows whether it held on the last one.
        held = tuple(self._rule_holds(rule, values) for rule in self.profile.end_rules)
        before, self._held = self._held, held
        for rule, now, was in zip(self.profile.end_rules, held, before, strict=True):
            if now and not (rule.edge and was):
                return rule.reason
        return None

    def _rule_holds(self, rule: EndRule, values: Mapping[str, int]) -> bool:
        hits = (self._holds(cond, values) for cond in rule.conditions)
        return all(hits) if rule.require_all else any(hits)

    def _holds(self, cond: EndCondition, values: Mapping[str, int]) -> bool:
        op = cond.op
        if op is ConditionOp.PROGRESS_COMPLETE:
            return self._prev_progress >= 1.0
        value = values[cond.variable]
        if op is ConditionOp.EQUAL:
            return value == cond.reference
        if op is ConditionOp.NOT_EQUAL:
            return value != cond.reference
        if op is ConditionOp.LESS:
            return value < cond.reference
        if op is ConditionOp.GREATER:
            return value > cond.reference
        if op is ConditionOp.ZERO:
            return value == 0
        if op is ConditionOp.NONZERO:
            return value != 0
        if op is ConditionOp.DECREASED:
            return value < self._prev[cond.variable]
        if op is ConditionOp.INCREASED:
            return value > self._prev[cond.variable]
        return value != self._start[cond.variable]  # CHANGED


# --------------------------------------------------------------------------- parsing


class _Table:
    """A TOML table read with one-line ProfileErrors naming the file and the key."""

    def __init__(self, data: Mapping[str, Any], where: str, source: str) -> None:
        self.data = data
        self.where = where
        self.source = source

    def _fail(self, key: str, what: str) -> ProfileError:
        place = f"{self.where}.{key}" if self.where else key
        return ProfileError(f"{self.source}: {place} {what}; see docs/profiles.md")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if key not in self.data:
            if default is ...:
                raise self._fail(key, "is missing")
            return default
        value = self.data[key]
        # bool is an int in Python; a TOML true is never a valid number here.
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise self._fail(key, f"must be a {names}, not {value!r}")
        return value

    def strings(self, key: str, default: Any = ...) -> tuple[str, ...]:
        value = self.get(key, list, default)
        if not all(isinstance(v, str) for v in value):
            raise self._fail(key, "must be a list of strings")
        return tuple(value)

    def table(self, key: str, default: Any = ...) -> _Table:
        value = self.get(key, dict, default)
        place = f"{self.where}.{key}" if self.where else key
        return _Table(value, place, self.source)

    def number_pair(self, key: str, default: tuple[int, int]) -> tuple[int, int]:
        value = self.get(key, list, list(default))
        if len(value) != 2 or not all(isinstance(v, int) for v in value) or not 0 < value[0] <= value[1]:
            raise self._fail(key, f"must be [min, max] with 0 < min <= max, not {value!r}")
        return (value[0], value[1])


def _parse_variables(
    table: _Table, ram_size: int, byte_order: str | None
) -> tuple[tuple[RamVariable, ...], tuple[ComposedVariable, ...]]:
    """RAM variables, and composed ones sorted so that each follows every variable it reads."""
    variables, pending = [], {}
    for name, spec in table.data.items():
        var = _Table(spec if isinstance(spec, dict) else {}, f"variables.{name}", table.source)
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or name == "bcd":
            raise table._fail(name, "is not a usable variable name (letters, digits and _; not bcd)")
        if "value" in var.data:
            if set(var.data) != {"value"}:
                raise var._fail("value", "is a composed variable: give value alone, no address or type")
            try:
                pending[name] = (var, parse_expression(var.get("value", str)))
            except ExpressionError as exc:
                raise var._fail("value", str(exc)) from None
            continue
        address = var.get("address", int)
        dtype = var.get("type", str)
        if dtype not in _DTYPES:
            raise var._fail("type", f"must be one of {sorted(_DTYPES)}, not {dtype!r}")
        if dtype[0] in "ui":
            if dtype[1] != "1" and byte_order is None:
                raise var._fail("type", f"{dtype!r} needs a byte order: write <{dtype} or >{dtype}, or set byte_order")
            dtype = f"{_BYTE_ORDERS[byte_order or 'little']}{dtype}" if dtype[1] != "1" else f"|{dtype}"
        offset = address & (ram_size - 1)
        if offset + np.dtype(dtype).itemsize > ram_size:
            raise var._fail("address", f"{address:#x} runs past the end of {ram_size}-byte RAM")
        variables.append(RamVariable(name, offset, dtype))
    known = {var.name for var in variables}
    composed = []
    while pending:  # Kahn's order: take every composed variable whose inputs are all known
        ready = [name for name, (_, expr) in pending.items() if set(expr.names) <= known]
        if not ready:
            name, (var, expr) = next(iter(pending.items()))
            unknown = [n for n in expr.names if n not in known and n not in pending]
            what = f"names unknown variables {unknown}" if unknown else "depends on itself (a cycle)"
            raise var._fail("value", what)
        for name in ready:
            composed.append(ComposedVariable(name, pending.pop(name)[1]))
            known.add(name)
    return tuple(variables), tuple(composed)


def _parse_reward(table: _Table, variables: set[str]) -> RewardSpec:
    kind_text = table.get("kind", str)
    try:
        kind = RewardKind(kind_text)
    except ValueError:
        raise table._fail("kind", f"must be one of {[k.value for k in RewardKind]}") from None
    variable = table.get("variable", str)
    if variable not in variables:
        raise table._fail("variable", f"names no variable ({variable!r})")
    scale = float(table.get("scale", (int, float), 1.0))
    if kind is RewardKind.DELTA:
        return RewardSpec(kind, variable, scale)
    level_key = table.strings("level_key", ())
    unknown = [name for name in level_key if name not in variables]
    if unknown:
        raise table._fail("level_key", f"names unknown variables {unknown}")
    ends = []
    end_table = table.table("level_end")
    for key, end in end_table.data.items():
        try:
            level = tuple(int(part) for part in key.split(",")) if key else ()
        except ValueError:
            raise end_table._fail(key, "must be comma-separated integers like \"0,1\"") from None
        if len(level) != len(level_key) or not isinstance(end, int) or isinstance(end, bool):
            raise end_table._fail(key, f"must give {len(level_key)} numbers and an integer end")
        ends.append((level, end))
    return RewardSpec(
        kind=kind,
        variable=variable,
        scale=scale,
        finish_bonus=float(table.get("finish_bonus", (int, float), 0.0)),
        finish_bonus_frames=table.get("finish_bonus_frames", int, 0),
        level_key=level_key,
        level_end=tuple(ends),
    )


def _parse_end_rules(
    rules: list[Any], source: str, variables: set[str], reward: RewardSpec | None
) -> tuple[EndRule, ...]:
    parsed = []
    terminal = {EndReason.LIFE_LOST.name, EndReason.GAME_OVER.name, EndReason.LEVEL_END.name}
    for n, raw in enumerate(rules):
        rule = _Table(raw if isinstance(raw, dict) else {}, f"end[{n}]", source)
        reason_name = rule.get("reason", str)
        if reason_name not in terminal:
            raise rule._fail("reason", f"must be one of {sorted(terminal)}, not {reason_name!r}")
        combine = rule.get("condition", str, "any")
        if combine not in ("all", "any"):
            raise rule._fail("condition", f"must be \"all\" or \"any\", not {combine!r}")
        edge = rule.get("edge", bool, False)
        conditions = []
        for m, raw_cond in enumerate(rule.get("when", list)):
            cond = _Table(raw_cond if isinstance(raw_cond, dict) else {}, f"end[{n}].when[{m}]", source)
            try:
                op = ConditionOp(cond.get("op", str))
            except ValueError:
                raise cond._fail("op", f"must be one of {[o.value for o in ConditionOp]}") from None
            if op is ConditionOp.PROGRESS_COMPLETE:
                if reward is None or reward.kind is not RewardKind.PROGRESS:
                    raise cond._fail("op", "progress-complete needs a [reward] of kind \"progress\"")
                conditions.append(EndCondition(op))
                continue
            variable = cond.get("variable", str)
            if variable not in variables:
                raise cond._fail("variable", f"names no variable ({variable!r})")
            reference = cond.get("reference", int) if op in _NEEDS_REFERENCE else 0
            conditions.append(EndCondition(op, variable, reference))
        if not conditions:
            raise rule._fail("when", "must list at least one condition")
        parsed.append(EndRule(EndReason[reason_name], tuple(conditions), combine == "all", edge))
    return tuple(parsed)


def _parse_explorer(
    table: _Table, action_names: tuple[str, ...], variables: set[str]
) -> ExplorerSpec:
    def cycles(key: str, required: bool) -> tuple[tuple[int, ...], ...]:
        entries = table.get(key, list, ... if required else [])
        parsed = []
        for entry in entries:
            names = [entry] if isinstance(entry, str) else entry
            if not names or not all(isinstance(name, str) for name in names):
                raise table._fail(key, "must list action names or lists of action names")
            unknown = [name for name in names if name not in action_names]
            if unknown:
                raise table._fail(key, f"names unknown actions {unknown}")
            parsed.append(tuple(action_names.index(name) for name in names))
        return tuple(parsed)

    forward = cycles("forward", True)
    if not forward:
        raise table._fail("forward", "must name at least one action")
    progress = table.get("progress", str, None)
    if progress is not None and progress not in variables:
        raise table._fail("progress", f"names no variable ({progress!r})")
    probability = float(table.get("jump_probability", (int, float), 0.03))
    if not 0.0 <= probability <= 1.0:
        raise table._fail("jump_probability", "must be between 0 and 1")
    counts = {}
    for key, default in (("stuck_steps", 60), ("back_steps", 12), ("run_up_steps", 8)):
        counts[key] = table.get(key, int, default)
        if counts[key] < 1:
            raise table._fail(key, "must be at least 1")
    return ExplorerSpec(
        forward=forward,
        jump=cycles("jump", False),
        back=cycles("back", False),
        progress=progress,
        jump_probability=probability,
        jump_steps=table.number_pair("jump_steps", (3, 8)),
        hold_steps=table.number_pair("hold_steps", (8, 30)),
        **counts,
    )


def parse_profile(text: str, source: str = "<profile>") -> GameProfile:
    """Build a profile from TOML text; ``source`` names the file in error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{source}: not valid TOML ({exc}); see docs/profiles.md") from None
    top = _Table(data, "", source)
    system_id = normalize_system_id(top.get("system", str))
    system = find_system(system_id)
    known_size = system.ram_size if system is not None else None
    ram_size = top.get("ram_size", int, ... if known_size is None else known_size)
    if ram_size <= 0 or ram_size & (ram_size - 1):
        raise top._fail("ram_size", f"must be a power of two, not {ram_size}")
    byte_order = top.get("byte_order", str, system.byte_order if system is not None else None)
    if byte_order is not None and byte_order not in _BYTE_ORDERS:
        raise top._fail("byte_order", f"must be \"big\" or \"little\", not {byte_order!r}")
    default_buttons = system.buttons if system is not None and system.buttons else ...
    buttons = tuple(normalize_button(b) for b in top.strings("buttons", default_buttons))
    if len(set(buttons)) != len(buttons):
        raise top._fail("buttons", "lists a button twice")
    variables, composed = _parse_variables(top.table("variables"), ram_size, byte_order)
    names = {var.name for var in variables} | {var.name for var in composed}

    action_names, actions = [], []
    for n, raw in enumerate(top.get("actions", list)):
        action = _Table(raw if isinstance(raw, dict) else {}, f"actions[{n}]", source)
        action_name = action.get("name", str)
        held = tuple(normalize_button(b) for b in action.strings("buttons"))
        missing = [b for b in held if b not in buttons]
        if missing:
            raise action._fail("buttons", f"names buttons the console lacks: {missing}")
        if action_name in action_names:
            raise action._fail("name", f"repeats the action name {action_name!r}")
        action_names.append(action_name)
        actions.append(held)
    if not actions:
        raise top._fail("actions", "must define at least one action")

    equivalent = []
    for alias, target in top.table("equivalent_buttons", {}).data.items():
        alias_n, target_n = normalize_button(alias), normalize_button(str(target))
        if alias_n not in buttons or target_n not in buttons:
            raise top._fail("equivalent_buttons", f"maps unknown buttons ({alias} = {target!r})")
        equivalent.append((alias_n, target_n))

    reward = _parse_reward(top.table("reward"), names) if "reward" in data else None
    end_rules = _parse_end_rules(top.get("end", list, []), source, names, reward)
    explorer = (
        _parse_explorer(top.table("explorer"), tuple(action_names), names)
        if "explorer" in data
        else None
    )
    retro = top.table("retro", {})
    ale = top.table("ale", {})
    rom = top.table("rom", {})
    hashes = tuple(normalize_rom_hash(h) for h in rom.strings("sha1", ()))
    bad = [h for h in hashes if not re.fullmatch(r"[0-9a-f]{40}", h)]
    if bad:
        raise rom._fail("sha1", f"must be 40-digit hex SHA-1s, not {bad}")
    max_steps = top.get("max_steps", int)
    frame_skip = top.get("frame_skip", int, 4)
    if max_steps < 1 or frame_skip < 1:
        raise top._fail("max_steps", "and frame_skip must be at least 1")
    return GameProfile(
        id=top.get("id", str),
        name=top.get("name", str),
        system=system_id,
        retro_game=retro.get("game", str, ""),
        retro_state=retro.get("state", str, ""),
        rom_names=rom.strings("names", ()),
        rom_hashes=hashes,
        ram_size=ram_size,
        buttons=buttons,
        actions=tuple(actions),
        action_names=tuple(action_names),
        variables=variables,
        max_steps=max_steps,
        text=text,
        reward=reward,
        end_rules=end_rules,
        explorer=explorer,
        frame_skip=frame_skip,
        equivalent_buttons=tuple(equivalent),
        byte_order=byte_order or "little",
        ale_game=ale.get("game", str, ""),
        composed=composed,
    )


def _builtin_files() -> dict[str, Any]:
    root = resources.files(_PROFILE_PACKAGE)
    return {
        entry.name[: -len(".toml")]: entry
        for entry in root.iterdir()
        if entry.name.endswith(".toml")
    }


def list_profiles() -> list[str]:
    """Ids of the shipped profiles, sorted."""
    return sorted(_builtin_files())


def load_profile(name_or_path: str) -> GameProfile:
    """A profile by id or ``.toml`` path, looked up the one way every command does.

    ``recorder.profile_library.ProfileLibrary.default()``: pinned paths, then
    ``SONIC_RL_PROFILES``, the user's profile folder, the shipped profiles (docs/profiles.md).
    """
    from recorder.profile_library import ProfileLibrary  # it imports this module

    return ProfileLibrary.default().resolve(name_or_path)


def find_profile_for_rom(rom_name: str, rom_hash: str) -> GameProfile | None:
    """The profile for a client's ROM, by SHA-1 (name only without a hash), from the default lookup."""
    from recorder.profile_library import ProfileLibrary

    return ProfileLibrary.default().find_for_rom(rom_name, rom_hash)
