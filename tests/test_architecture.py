"""The layer rules of docs/architecture.md, checked on the source (issue 8).

dataset/ is the bottom layer, recorder/ sits on it, trainer/ on both: an import that points upwards
is a package cycle waiting to happen. The checks read the source with ``ast`` (imports inside
functions count too), so a lazy import cannot hide a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dataset", "recorder", "trainer")
# What each package may import from the project: the layers, bottom first.
ALLOWED = {
    "dataset": {"dataset"},
    "recorder": {"dataset", "recorder"},
    "trainer": {"dataset", "recorder", "trainer"},
}


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """Every absolute module name ``path`` imports, at any depth of the file."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                parts = path.relative_to(ROOT).with_suffix("").parts[: -node.level]
                base = ".".join(parts)
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.add(module)
            # `from recorder import session` imports the submodule, not only the package.
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _module_file(name: str) -> Path | None:
    candidate = ROOT.joinpath(*name.split("."))
    for path in (candidate.with_suffix(".py"), candidate / "__init__.py"):
        if path.is_file():
            return path
    return None


@pytest.mark.parametrize("package", PACKAGES)
def test_no_package_imports_a_layer_above_it(package: str) -> None:
    wrong = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _modules(package)
        for name in sorted(_imports(path))
        if name.split(".")[0] in PACKAGES and name.split(".")[0] not in ALLOWED[package]
    ]
    assert not wrong, "\n".join(wrong)


def test_the_session_rules_import_no_io_library_even_indirectly() -> None:
    """recorder/session.py is sans-I/O like the codec: fed messages, it returns what to do."""
    banned = {"asyncio", "websockets"}
    seen: set[Path] = set()
    todo = [ROOT / "recorder" / "session.py"]
    assert todo[0].is_file(), "recorder/session.py is the home of the session rules"
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imports(path):
            assert name.split(".")[0] not in banned, f"{path.relative_to(ROOT)} imports {name}"
            if name.split(".")[0] in PACKAGES and (target := _module_file(name)) is not None:
                todo.append(target)
    assert len(seen) > 1  # it did follow the project modules it uses
