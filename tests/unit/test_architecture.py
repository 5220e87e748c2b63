"""The house rules of docs/architecture.md, checked: what may import what, and module sizes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[2] / "allowlist_sync"
MODULES = sorted(PACKAGE.rglob("*.py"))
#: "No module over about 450 lines."
MAX_LINES = 470
#: The pipeline and what everything shares, at the top level.
TOP_LEVEL = {
    "__init__", "__main__", "_version", "apply", "cidrs", "cli", "errors", "fleet", "guards",
    "logs", "outcome", "plan", "record", "render", "runlock", "sync",
}  # fmt: skip
#: Rooms that talk to the outside or are shared: they never reach up into the program.
SELF_CONTAINED = {"azure", "dbt", "net", "okta"}
UPWARD = ("config", "sync", "apply", "serve", "reporting", "commands", "cli")


def name_of(path: Path) -> str:
    """`allowlist_sync.x.y` for a file of the package."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room(module: str) -> str:
    """The room (or top-level module) of `allowlist_sync.room...`; "" for the package itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imports_of(path: Path) -> set[str]:
    """Every allowlist_sync module a file imports, at any depth of the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("allowlist_sync")}


@pytest.mark.parametrize("path", MODULES, ids=name_of)
def test_no_module_is_much_over_450_lines(path: Path) -> None:
    """A module small enough to read in one sitting."""
    assert len(path.read_text().splitlines()) <= MAX_LINES


def test_the_top_level_holds_only_the_pipeline_and_shared_modules() -> None:
    """Everything else lives in a room named for what it serves."""
    assert {p.stem for p in PACKAGE.glob("*.py")} <= TOP_LEVEL


@pytest.mark.parametrize(
    "path", [p for p in MODULES if room(name_of(p)) in SELF_CONTAINED], ids=name_of
)
def test_outside_facing_rooms_never_import_upward(path: Path) -> None:
    """azure/, okta/, dbt/ and net/ take plain values: no settings, no pipeline, no shells."""
    upward = {m for m in imports_of(path) if m.split(".")[1] in UPWARD}
    assert upward == set(), f"{name_of(path)} imports {sorted(upward)}"


@pytest.mark.parametrize(
    "path", [p for p in MODULES if room(name_of(p)) == "emulator"], ids=name_of
)
def test_the_emulator_imports_nothing_of_the_client(path: Path) -> None:
    """The emulator is an independent peer: it shares no code with what it tests."""
    allowed = (
        "allowlist_sync.emulator",
        "allowlist_sync.net.httpserver",
        "allowlist_sync._version",
    )
    foreign = {m for m in imports_of(path) if not m.startswith(allowed)}
    assert foreign == set(), f"{name_of(path)} imports {sorted(foreign)}"


@pytest.mark.parametrize(
    "path",
    [p for p in MODULES if p.parent == PACKAGE and p.stem not in ("cli", "__main__", "__init__")],
    ids=name_of,
)
def test_the_pipeline_never_imports_its_shells(path: Path) -> None:
    """sync, plan, guards and friends know nothing of serve, reporting, commands or the CLI."""
    shells = {m for m in imports_of(path) if room(m) in ("serve", "reporting", "commands", "cli")}
    assert shells == set(), f"{name_of(path)} imports {sorted(shells)}"
