"""The config file of sources and targets (TOML, read by `tomllib`): read_config, target_settings.

    file.py          the file as a whole: read, parsed, top-level keys, targets against each other
    file_sources.py  the [sources.NAME] tables -> SourceSpec
    file_targets.py  the [[targets]] tables -> TargetSpec, checked by the env's Settings rules
    file_checks.py   what every table shares: types, unknown keys, secrets, one-line errors

The environment keeps what the process needs (`RunSettings`); the file describes what it syncs.
Nothing in the file is trusted: every problem is one ConfigError line (exit 78) naming the file,
the table and the key, and a token written into the file is refused without being shown.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from allowlist_sync.config.file_checks import (
    Place,
    check_keys,
    integer,
    looks_like_token,
    scan_secrets,
)
from allowlist_sync.config.file_sources import read_sources, source_label
from allowlist_sync.config.file_targets import (
    TargetSpec,
    build_settings,
    read_target,
    target_label,
)
from allowlist_sync.config.runsettings import RunSettings
from allowlist_sync.config.settings import Settings
from allowlist_sync.errors import ConfigError
from allowlist_sync.logs import get_logger
from allowlist_sync.sources.specs import AzureSource, SourceSpec

#: The largest config file read: a fleet of hundreds of targets is a few dozen KiB.
MAX_CONFIG_BYTES = 1024 * 1024
TOP_KEYS = ("concurrency", "sources", "targets")
DEFAULT_CONCURRENCY = 4
MAX_CONCURRENCY = 32
_BOM = "\ufeff"

log = get_logger(__name__)


@dataclass(frozen=True)
class FleetConfig:
    """A config file's sources (in file order) and targets, and how many targets run at once."""

    path: Path
    sources: dict[str, SourceSpec]
    targets: tuple[TargetSpec, ...]
    concurrency: int = DEFAULT_CONCURRENCY


def read_config(path: Path, run: RunSettings) -> FleetConfig:
    """The config file at `path`, checked whole; ConfigError (78) for its first problem.

    Tokens are not read here: `target_settings` reads each when its target runs.
    """
    file = str(path)
    document = _parse(path, file)
    top = Place(file, "top level")
    try:
        _scan_all(file, document)
    except RecursionError:  # pragma: no cover - tomllib gives up at a lesser depth
        raise ConfigError(f"{file}: tables nested too deeply") from None
    check_keys(top, document, TOP_KEYS, {})
    concurrency = integer(top, document, "concurrency")
    if concurrency is not None and not 1 <= concurrency <= MAX_CONCURRENCY:
        raise top.error("concurrency", f"must be 1 to {MAX_CONCURRENCY} (targets run at once)")
    tables = _target_tables(top, document.get("targets"))
    folder = path.absolute().parent
    sources = read_sources(file, folder, document.get("sources"), run)
    targets = tuple(
        read_target(
            Place(file, target_label(index, table.get("name"))), table, folder, sources, run
        )
        for index, table in enumerate(tables, start=1)
    )
    _check_apart(file, targets)
    _check_sources_of_targets(file, sources, targets)
    used = {name for target in targets for name in target.sources}
    for name in sources:
        if name not in used:
            log.warning("config_source_unused", source=name, file=file)
    return FleetConfig(
        path=path,
        sources=sources,
        targets=targets,
        concurrency=concurrency or DEFAULT_CONCURRENCY,
    )


def target_settings(config: FleetConfig, target: TargetSpec, run: RunSettings) -> Settings:
    """The Settings of one target: the run's values, the target's, and its token read now.

    Only the file and the token's own file or variable are read, never DBT_CLOUD_* or other
    target variables; a missing or bad token is a ConfigError for this target alone. The
    Settings' own Azure-source fields keep their defaults: the target's sources are
    `config.sources[name]` for each name in `target.sources`.
    """
    index = config.targets.index(target) + 1 if target in config.targets else 0
    place = Place(str(config.path), target_label(index, target.name))
    return build_settings(place, target, run)


def _parse(path: Path, file: str) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{file}: over {MAX_CONFIG_BYTES} bytes (1 MiB), not a config file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 (byte {exc.start + 1}); save it as UTF-8") from None
    try:
        return tomllib.loads(text.removeprefix(_BOM))
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message names the line and column and never repeats the text.
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{file}: not valid TOML: arrays or tables nested too deeply") from None


def _scan_all(file: str, document: dict[str, Any]) -> None:
    """Refuse a secret anywhere, before any other check can name the key it hides in."""
    scan_secrets(
        Place(file, "top level"),
        {k: v for k, v in document.items() if k not in ("sources", "targets")},
    )
    sources, targets = document.get("sources"), document.get("targets")
    if isinstance(sources, dict):
        for name, table in sources.items():
            if looks_like_token(name):
                raise Place(file, "[sources]").error(
                    None, "a source name looks like a token; a config file is not a secret store"
                )
            place = Place(file, source_label(name))
            scan_secrets(place, table if isinstance(table, dict) else {"": table})
    else:
        scan_secrets(Place(file, "top level"), {"sources": sources})
    for index, table in enumerate(targets if isinstance(targets, list) else [targets], 1):
        name = table.get("name") if isinstance(table, dict) else None
        place = Place(file, target_label(index, name))
        scan_secrets(place, table if isinstance(table, dict) else {"targets": table})


def _target_tables(top: Place, targets: Any) -> list[dict[str, Any]]:
    if targets is None or targets == []:
        raise top.error(None, "no [[targets]] table: describe at least one dbt account")
    if not isinstance(targets, list) or not all(isinstance(t, dict) for t in targets):
        raise top.error("targets", "must be an array of tables, each written [[targets]]")
    return targets


def _check_apart(file: str, targets: tuple[TargetSpec, ...]) -> None:
    """Refuse two targets with one name, or two targets owning one rule (they would fight)."""
    names: dict[str, int] = {}  # case-folded: names become file names, on any file system
    rules: dict[tuple[str, int, str], tuple[int, str]] = {}
    for index, target in enumerate(targets, start=1):
        place = Place(file, target_label(index, target.name))
        folded = target.name.casefold()
        if folded in names:
            raise place.error("name", f"already names target #{names[folded]} (case aside)")
        names[folded] = index
        rule = (same_host(target.host_url), target.account_id, target.rule_name)
        if rule in rules:
            first, first_name = rules[rule]
            raise place.error(
                "rule_name",
                f'target #{first} "{first_name}" owns the same rule (account '
                f"{target.account_id} on {target.host_url}): two targets would fight over it",
            )
        rules[rule] = (index, target.name)


def same_host(url: str) -> str:
    """The host a URL reaches, as one string for every spelling of it: scheme, lower-case host
    without a trailing dot, the port only when it is not the scheme's default."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    default = {"https": 443, "http": 80}.get(parts.scheme)
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


def _check_sources_of_targets(
    file: str, sources: dict[str, SourceSpec], targets: tuple[TargetSpec, ...]
) -> None:
    """Refuse what one run cannot do: two sources reading standard input, or a target fed by
    two Azure sources of one cloud (its rule records one changeNumber per cloud, so the rollback
    guard could not tell them apart)."""
    stdin = [
        name for name, spec in sources.items() if isinstance(spec, AzureSource) and spec.file == "-"
    ]
    if len(stdin) > 1:
        place = Place(file, source_label(stdin[1]))
        raise place.error("file", f'"-" (standard input) is already source {stdin[0]!r}\'s')
    for index, target in enumerate(targets, start=1):
        clouds: dict[str, str] = {}
        for name in target.sources:
            spec = sources[name]
            if not isinstance(spec, AzureSource):
                continue
            cloud = spec.query.cloud
            if cloud in clouds:
                raise Place(file, target_label(index, target.name)).error(
                    "sources",
                    f"{clouds[cloud]!r} and {name!r} are both Azure {cloud} sources; a rule "
                    "records one changeNumber per cloud: use one source with both tags",
                )
            clouds[cloud] = name


__all__ = ["FleetConfig", "TargetSpec", "read_config", "same_host", "target_settings"]
