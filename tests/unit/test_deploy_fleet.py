"""The shipped config-file deployments (Kubernetes fleet overlay, compose.fleet.yaml) stay valid.

scripts/check_deploy.py renders and checks them with kubectl and compose in CI's deploy step;
these pin, with the program's own code and no tools, what each run of the suite can see: the
config files read, one token file per target, and the base's target variables all removed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from allowlist_sync.config import RunSettings, target_env_names
from allowlist_sync.config.file import read_config

ROOT = Path(__file__).parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
OVERLAY = KUBERNETES / "overlays" / "fleet"
COMPOSE = ROOT / "deploy" / "compose"
CONFIG_FILES = [OVERLAY / "config.toml", COMPOSE / "fleet.toml"]
TOKEN_DIR = Path("/run/secrets/allowlist-sync")


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_each_target_reads_its_own_token_file_from_the_token_mount(path: Path) -> None:
    """The program reads the shipped config file, and each target's token is TOKEN_DIR/<name>."""
    config = read_config(path, RunSettings())
    assert len(config.targets) >= 2
    assert [t.token_file for t in config.targets] == [TOKEN_DIR / t.name for t in config.targets]


def test_the_example_secret_has_a_key_for_every_target() -> None:
    """secret.example.yaml's keys are exactly the overlay's target names, each a placeholder."""
    config = read_config(OVERLAY / "config.toml", RunSettings())
    text = (OVERLAY / "secret.example.yaml").read_text()
    string_data = text.split("\nstringData:\n", 1)[1]
    keys = dict(re.findall(r'^  ([\w.-]+): "(.*)"$', string_data, re.M))
    assert set(keys) == {t.name for t in config.targets}
    assert all(value.startswith("REPLACE") for value in keys.values())


def test_the_overlay_removes_every_target_variable_of_the_base_configmap() -> None:
    """Each target variable the base ConfigMap sets has a remove op in the fleet overlay."""
    base = (KUBERNETES / "base" / "configmap.yaml").read_text()
    data = set(re.findall(r"^  ([A-Z][A-Z0-9_]*):", base, re.M))
    removed = set(
        re.findall(
            r"op: remove\n\s+path: /data/(\w+)", (OVERLAY / "kustomization.yaml").read_text()
        )
    )
    assert data & set(target_env_names()) == removed


def test_the_fleet_compose_steps_show_the_plans_before_up() -> None:
    """compose.fleet.yaml and its README steps run `sync --dry-run` before `up` applies."""
    readme = (ROOT / "deploy" / "README.md").read_text()
    section = readme.split("### Several accounts with compose", 1)[1].split("\n## ", 1)[0]
    for text in (section, (COMPOSE / "compose.fleet.yaml").read_text()):
        dry_run = text.find(
            "docker compose -f compose.fleet.yaml run --rm allowlist-sync sync --dry-run"
        )
        up = text.find("docker compose -f compose.fleet.yaml up")
        assert 0 <= dry_run < up
