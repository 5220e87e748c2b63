"""The emulator package stays readable: small modules that say what they hold, documented."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

import allowlist_sync.emulator as emulator
from allowlist_sync.emulator.control import ROUTES
from allowlist_sync.emulator.faults import ACTIONS

PACKAGE = Path(emulator.__file__).parent
DOC = (Path(__file__).parents[2] / "docs" / "emulator.md").read_text()
MODULES = sorted(info.name for info in pkgutil.iter_modules([str(PACKAGE)]))


@pytest.mark.parametrize("name", MODULES)
def test_every_module_is_small_and_has_a_docstring(name: str) -> None:
    """No emulator module is over 450 lines, and each opens with a docstring."""
    lines = (PACKAGE / f"{name}.py").read_text().count("\n")
    assert lines <= 450, f"{name}.py has {lines} lines"
    module = importlib.import_module(f"allowlist_sync.emulator.{name}")
    assert module.__doc__ and module.__doc__.strip()


def test_every_module_is_named_in_the_package_docstring() -> None:
    """The package docstring draws every module, so a newcomer finds the room for a change."""
    assert emulator.__doc__ is not None
    for name in MODULES:
        assert f"{name}.py" in emulator.__doc__


def test_the_public_surface_is_all() -> None:
    """Every name in `__all__` exists on the package."""
    assert emulator.__all__
    for name in emulator.__all__:
        assert hasattr(emulator, name), name


@pytest.mark.parametrize(
    ("method", "path"), [(m, p) for p, methods in ROUTES.items() for m in methods]
)
def test_every_control_endpoint_is_documented(method: str, path: str) -> None:
    """docs/emulator.md has a table row and a curl example for each control endpoint."""
    assert f"| {method} | `{path}` |" in DOC
    curl = [line for line in DOC.splitlines() if line.startswith("curl ") and path in line]
    if method == "GET":
        assert any("-X" not in line for line in curl), path
    else:
        assert any(f"-X {method} " in line for line in curl), (method, path)


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_every_fault_action_is_documented(action: str) -> None:
    """docs/emulator.md has a row for each fault action."""
    assert f"| `{action}` |" in DOC
