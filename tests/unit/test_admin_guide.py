"""The admin guide and the deploy docs keep up with the code: every error kind, guard and exit
code has a runbook entry, its links resolve, and the deploy steps show a plan before any apply.

The kinds and guard names are parsed from the source (not imported from a list kept beside the
docs), so a new error class or guard without a runbook entry fails here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from allowlist_sync.errors import ExitCode

ROOT = Path(__file__).parents[2]
PACKAGE = ROOT / "allowlist_sync"
GUIDE_PATH = ROOT / "docs" / "admin-guide.md"
GUIDE = GUIDE_PATH.read_text() if GUIDE_PATH.exists() else ""
README = (ROOT / "README.md").read_text()
DEPLOY = (ROOT / "deploy" / "README.md").read_text()
COMPOSE = (ROOT / "deploy" / "compose" / "compose.yaml").read_text()


def error_kinds() -> set[str]:
    """Every `kind = "..."` a class in errors.py defines."""
    tree = ast.parse((PACKAGE / "errors.py").read_text())
    kinds: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for stmt in node.body:
                target = stmt.target if isinstance(stmt, ast.AnnAssign) else None
                if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                    target = stmt.targets[0]
                value = stmt.value if isinstance(stmt, ast.Assign | ast.AnnAssign) else None
                if (
                    isinstance(target, ast.Name)
                    and target.id == "kind"
                    and isinstance(value, ast.Constant)
                    and isinstance(value.value, str)
                ):
                    kinds.add(value.value)
    return kinds


def cli_failure_kinds() -> set[str]:
    """The kinds cli.py reports for what is no AllowlistSyncError (Ctrl-C, a bug)."""
    tree = ast.parse((PACKAGE / "cli.py").read_text())
    return {
        node.args[1].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "_json_failure"
        and len(node.args) >= 2
        and isinstance(node.args[1], ast.Constant)
        and isinstance(node.args[1].value, str)
    }


def guard_names() -> set[str]:
    """Every literal `guard="..."` keyword in the package, and every row of guards.py's table."""
    doc = ast.get_docstring(ast.parse((PACKAGE / "guards.py").read_text())) or ""
    names = set(re.findall(r"^\| ([a-z_]+) +\|", doc, re.M)) - {"guard"}  # less the header
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                for keyword in node.keywords:
                    if (
                        keyword.arg == "guard"
                        and isinstance(keyword.value, ast.Constant)
                        and isinstance(keyword.value.value, str)
                    ):
                        names.add(keyword.value.value)
    return names


def section(text: str, heading: str) -> str:
    """The body of the `## heading...` section of a Markdown text, up to the next `## `."""
    match = re.search(rf"^## {re.escape(heading)}.*?$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"no section starting '## {heading}'"
    return match.group(1)


def runbook() -> str:
    return section(GUIDE, "Runbook")


def entries(level: str) -> set[str]:
    """The names in the runbook's headings of a level: '### `kind`' or '#### guard `name`'."""
    return set(re.findall(rf"^{level} `([a-z_]+)`", runbook(), re.M))


def test_the_parsers_find_what_the_code_defines() -> None:
    """The parsers see the known kinds and guards, so the checks below cannot pass vacuously."""
    assert {"config", "feed", "auth", "permission", "access_denied", "refused"} <= error_kinds()
    assert {"interrupted", "internal"} <= cli_failure_kinds()
    assert {"feed_scope", "rollback", "lockout", "max_delete", "ownership"} <= guard_names()


@pytest.mark.parametrize("kind", sorted(error_kinds() | cli_failure_kinds()))
def test_every_error_kind_has_a_runbook_entry(kind: str) -> None:
    """Each error.kind the code can report has its own '### `kind`' entry in the runbook."""
    assert kind in entries("###")


@pytest.mark.parametrize("guard", sorted(guard_names()))
def test_every_guard_has_a_runbook_entry(guard: str) -> None:
    """Each guard name the code refuses with has its own '#### guard `name`' entry."""
    assert guard in entries("#### guard")


@pytest.mark.parametrize("code", list(ExitCode))
def test_every_exit_code_is_in_the_runbook(code: ExitCode) -> None:
    """Each exit code has a row in the runbook's exit-code table."""
    assert re.search(rf"^\| {int(code)} \|", runbook(), re.M)


def test_every_runbook_entry_says_what_to_check_and_do() -> None:
    """Each kind and guard entry names what it means, what to check and what to do."""
    blocks = re.split(r"^#{3,4} ", runbook(), flags=re.M)[1:]
    assert blocks
    for block in blocks:
        name = block.splitlines()[0]
        for part in ("**Means**", "**Check**", "**Do**"):
            assert part in block, f"{name}: no {part}"


def test_the_readme_links_to_the_admin_guide() -> None:
    """README points dbt admins at docs/admin-guide.md."""
    assert "](docs/admin-guide.md" in README


def test_the_guides_relative_links_resolve() -> None:
    """Every relative link in the admin guide names a file that exists."""
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", GUIDE)
    local = [link for link in links if "://" not in link]
    assert local
    missing = [link for link in local if not (GUIDE_PATH.parent / link).exists()]
    assert missing == []


def test_the_region_table_names_every_host_in_the_openapi_servers() -> None:
    """The hosts of the dbt OpenAPI `servers` list are all in the guide's region table."""
    hosts = ("cloud.getdbt.com", "emea.dbt.com", "au.dbt.com", ".us1.dbt.com")
    table = section(GUIDE, "Which API host")
    assert [h for h in hosts if h not in table] == []


def code_blocks(text: str) -> str:
    """The shell code blocks of a Markdown text, joined."""
    return "\n".join(re.findall(r"```(?:sh|bash)\n(.*?)```", text, re.S))


@pytest.mark.parametrize(
    "commands",
    [code_blocks(section(DEPLOY, "Cron container with compose")), COMPOSE],
    ids=["deploy/README.md", "compose.yaml"],
)
def test_compose_steps_show_the_plan_before_serve_can_apply(commands: str) -> None:
    """The compose commands run `sync --dry-run` before `up`, since serve applies at start."""
    dry_run = commands.find("docker compose run --rm allowlist-sync sync --dry-run")
    up = commands.find("docker compose up")
    assert 0 <= dry_run < up


def test_compose_docs_say_where_sync_health_is_read() -> None:
    """The compose docs say healthy is /livez only and show how to read /status."""
    text = section(DEPLOY, "Cron container with compose")
    assert "/livez" in text
    assert re.search(r"docker compose exec allowlist-sync .*/status", code_blocks(text), re.S)
    assert "/status" in COMPOSE and "/livez" in COMPOSE


@pytest.mark.parametrize("text", [DEPLOY, GUIDE], ids=["deploy/README.md", "admin-guide.md"])
def test_waiting_for_a_job_stops_on_failed_as_well_as_complete(text: str) -> None:
    """Every `kubectl wait`-style step waits for Complete or Failed, never Complete alone."""
    for block in re.findall(r"```(?:sh|bash)\n(.*?)```", text, re.S):
        if "create job" in block:
            assert "Complete" in block and "Failed" in block
            assert "wait --for=condition=complete" not in block
