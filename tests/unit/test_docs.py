"""The README stays the reference: every setting and exit code is documented there."""

from __future__ import annotations

from pathlib import Path

import pytest

from allowlist_sync.config import Settings, env_name
from allowlist_sync.errors import ExitCode

README = (Path(__file__).parents[2] / "README.md").read_text()


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_in_the_configuration_table(field: str) -> None:
    """Each settings field has a row naming its environment variable."""
    assert f"| `{env_name(field)}` |" in README


@pytest.mark.parametrize("code", list(ExitCode))
def test_every_exit_code_is_documented(code: ExitCode) -> None:
    """Each exit code has a row in the exit-code table."""
    assert f"| {int(code)} |" in README
