"""A config dataclass is its own command line (cleanrl's habit: the dataclass of arguments is the CLI).

A field declared with :func:`flag` becomes a click option: ``--`` and the field's
name with dashes (``n_step`` -> ``--n-step``) unless ``name`` says otherwise, the
field's default as the option's default, its type as the option's type, and the
help text as both the field's documentation and ``--help``. A field declared with
:func:`nested` holds another config dataclass whose flags join the command
(``TrainConfig.preprocess``). Fields declared plainly are not flags.

Types: ``int``, ``float``, ``str``, ``Path``, an enum (a choice of its values),
``X | None`` (default None), and ``bool``: a bool flag is a switch that sets the
opposite of the default (``amp: bool = flag(True, name="--no-amp")``), or with
``negatable=True`` a pair that sets either value (``--layer-norm/--no-layer-norm``: an option
whose default was turned on keeps the name users typed when it was off). Anything
else gives the option's ``click_type`` and a ``parse`` from the option's value to
the field's; one flag may set several fields of its dataclass (``also``, with
``parse`` returning one value per field: ``--frame-size`` sets height and width).

A command uses :func:`options` to add the flags, :func:`build` to make the config
from what click parsed, and :func:`given` for the fields the user typed (a resumed
run may refuse those, naming the flag with :func:`flag_name`). A config's
``__post_init__`` checks its values with :func:`require`, whose one-line errors name
the flag too.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click

from dataset.errors import ConfigError

__all__ = ["Flag", "build", "flag", "flag_name", "given", "nested", "options", "require"]

_FLAG = "sonic_rl.flag"
_NESTED = "sonic_rl.nested"

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C")


@dataclasses.dataclass(frozen=True)
class Flag:
    """How one field (or several, with ``also``) appears on the command line."""

    help: str
    #: "--frame-size"; None: "--" + the field name with dashes.
    name: str | None = None
    metavar: str | None = None
    #: click's type for the option when the field's own type is not a plain one.
    click_type: Any = None
    #: The option's value -> the field's value (a tuple, one per field, with ``also``).
    parse: Callable[[Any], Any] | None = None
    #: The field's default value(s) -> the option's default as click takes and shows it.
    show: Callable[..., Any] | None = None
    #: Further fields of the same dataclass this flag sets.
    also: tuple[str, ...] = ()
    #: A bool flag as a pair, ``--name/--no-name``, defaulting to the field's default.
    negatable: bool = False


def flag(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    default_factory: Any = dataclasses.MISSING,
    **how: Any,
) -> Any:
    """A dataclass field that is also a command-line flag (``how``: the other fields of :class:`Flag`)."""
    return dataclasses.field(default=default, default_factory=default_factory,
                             metadata={_FLAG: Flag(help=help, **how)})  # fmt: skip


def nested(default_factory: Callable[[], Any]) -> Any:
    """A field holding another config dataclass whose flags belong to the same command."""
    return dataclasses.field(default_factory=default_factory, metadata={_NESTED: True})


@dataclasses.dataclass(frozen=True)
class _Option:
    fields: tuple[tuple[str, ...], ...]  # field paths it sets, the declaring field first
    flag: Flag
    kind: Any  # the declaring field's type, None stripped
    defaults: tuple[Any, ...]  # the fields' defaults

    @property
    def param(self) -> str:
        return "__".join(self.fields[0])

    @property
    def name(self) -> str:
        return self.flag.name or "--" + self.fields[0][-1].replace("_", "-")

    @property
    def switch(self) -> bool:
        return self.kind is bool and self.flag.click_type is None

    def decorator(self) -> Callable[[F], F]:
        f, default = self.flag, self.defaults[0]
        kw: dict[str, Any] = {"help": f.help, "metavar": f.metavar}
        if self.switch and f.negatable:
            pair = f"{self.name}/--no-{self.name.removeprefix('--')}"
            return click.option(pair, self.param, default=bool(default), show_default=True, help=f.help)
        if self.switch:
            return click.option(self.name, self.param, is_flag=True, default=False, help=f.help)
        if f.show is not None and default is not None:
            default = f.show(*self.defaults)
        elif isinstance(default, enum.Enum):
            default = default.value
        if f.click_type is not None:
            kw["type"] = f.click_type
        elif isinstance(self.kind, type) and issubclass(self.kind, enum.Enum):
            kw["type"] = click.Choice([m.value for m in self.kind])
        elif self.kind is Path:
            kw["type"] = click.Path(path_type=Path)
        elif self.kind in (int, float, str):
            kw["type"] = self.kind
        elif f.parse is None:
            raise TypeError(f"flag {self.name}: give a click_type and parse for a field of type {self.kind}")
        return click.option(self.name, self.param, default=default, show_default=default not in (None, ""), **kw)

    def values(self, raw: Any) -> tuple[Any, ...]:
        """The fields' values for what click parsed."""
        if self.switch and self.flag.negatable:
            return (bool(raw),)
        if self.switch:
            return (not self.defaults[0]) if raw else self.defaults[0],
        if raw is None:
            return (None,)
        if self.flag.parse is not None:
            value = self.flag.parse(raw)
            return tuple(value) if self.flag.also else (value,)
        if isinstance(self.kind, type) and issubclass(self.kind, enum.Enum):
            return (self.kind(raw),)
        return (raw,)


def _strip_none(kind: Any) -> Any:
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return kind


def _default(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    raise TypeError(f"flag field {field.name} needs a default")


@functools.cache
def _options(cls: type, prefix: tuple[str, ...] = ()) -> tuple[_Option, ...]:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    found: list[_Option] = []
    for name, field in fields.items():
        if field.metadata.get(_NESTED):
            found.extend(_options(hints[name], (*prefix, name)))
        elif (f := field.metadata.get(_FLAG)) is not None:
            names = (name, *f.also)
            found.append(_Option(
                fields=tuple((*prefix, n) for n in names), flag=f, kind=_strip_none(hints[name]),
                defaults=tuple(_default(fields[n]) for n in names),
            ))  # fmt: skip
    return tuple(found)


def options(cls: type, *, exclude: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Decorator: the flags of config dataclass ``cls`` as click options, in field order (``exclude``: field names)."""

    def add(command: F) -> F:
        for opt in reversed(_options(cls)):
            if opt.fields[0][0] not in exclude:
                command = opt.decorator()(command)
        return command

    return add


def build(cls: type[C], params: dict[str, Any], **values: Any) -> C:
    """The config for the options click parsed (taken out of ``params``); ``values`` set other fields."""
    by_path: dict[tuple[str, ...], Any] = {}
    for opt in _options(cls):
        if opt.param in params:
            by_path.update(zip(opt.fields, opt.values(params.pop(opt.param)), strict=True))
    return _make(cls, (), by_path, values)


def _make(
    cls: type[C], prefix: tuple[str, ...], by_path: Mapping[tuple[str, ...], Any], values: Mapping[str, Any]
) -> C:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        path = (*prefix, field.name)
        if not prefix and field.name in values:
            kwargs[field.name] = values[field.name]
        elif path in by_path:
            kwargs[field.name] = by_path[path]
        elif field.metadata.get(_NESTED):
            kwargs[field.name] = _make(hints[field.name], path, by_path, {})
    return cls(**kwargs)


def given(ctx: click.Context, cls: type) -> dict[str, str]:
    """{field path ("lr", "preprocess.height"): the flag that set it} for the flags typed on the command line."""
    typed: dict[str, str] = {}
    for opt in _options(cls):
        if ctx.get_parameter_source(opt.param) is click.core.ParameterSource.COMMANDLINE:
            typed.update({".".join(path): opt.name for path in opt.fields})
    return typed


def flag_name(cls: type, path: str) -> str:
    """The flag that sets field ``path`` of ``cls`` ("amp" -> "--no-amp"); "--" + the name if it has none."""
    for opt in _options(cls):
        if tuple(path.split(".")) in opt.fields:
            return opt.name
    return "--" + path.split(".")[-1].replace("_", "-")


def require(config: object, *rules: tuple[str, bool, str]) -> None:
    """Check a config's values: for the first rule (field path, ok, what it must be) that fails, raise
    ConfigError naming the flag, e.g. ``--updates 0 must be at least 1``."""
    for path, ok, must in rules:
        if not ok:
            value = functools.reduce(getattr, path.split("."), config)
            raise ConfigError(f"{flag_name(type(config), path)} {value} {must}")
