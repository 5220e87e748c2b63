"""The `[sources.*]` tables of a config file, checked and built into `SourceSpec`s.

URLs obey the one URL rule (`net/urls.py`) and are registered so that their query strings are
redacted; relative files are read from the config file's folder; static CIDRs obey the feed
scope rule with the run's prefix limits, since configuration may never widen what a feed may.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from allowlist_sync.azure.query import FeedQuery
from allowlist_sync.cidrs import scope_problem
from allowlist_sync.config.file_checks import (
    Place,
    check_keys,
    did_you_mean,
    shown,
    text,
    text_list,
)
from allowlist_sync.config.runsettings import RunSettings
from allowlist_sync.logs import register_url
from allowlist_sync.net.urls import check_http_url
from allowlist_sync.okta.query import DEFAULT_OKTA_URL, OktaQuery
from allowlist_sync.sources.specs import (
    SOURCE_TYPES,
    AzureSource,
    OktaSource,
    SourceSpec,
    StaticSource,
)

#: The keys of each source type.
SOURCE_KEYS: dict[str, tuple[str, ...]] = {
    "azure-service-tags": ("type", "cloud", "tags", "file", "url", "details_url", "download_base"),
    "okta-ip-ranges": ("type", "cells", "file", "url"),
    "static": ("type", "cidrs"),
}
CLOUDS = ("Public", "AzureGovernment", "China")
DEFAULT_TAGS = ("AzureActiveDirectory",)
#: A source name: it appears in logs, metric labels and the `sources` lists of targets.
SOURCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
STDIN = "-"


def source_label(name: str) -> str:
    """`[sources.entra]`, the name quoted and escaped when it is not a valid one."""
    return f"[sources.{name if SOURCE_NAME.fullmatch(name) else shown(name)}]"


def _other_keys(kind: str) -> dict[str, str]:
    """Keys of the other source types, each with the type it belongs to."""
    found: dict[str, str] = {}
    for other, keys in SOURCE_KEYS.items():
        for key in keys:
            if other != kind and key not in SOURCE_KEYS[kind]:
                found.setdefault(key, f"{other} sources")
    return found


def read_sources(file: str, folder: Path, sources: Any, run: RunSettings) -> dict[str, SourceSpec]:
    """Every `[sources.NAME]` table as a spec, in file order; ConfigError for the first problem."""
    top = Place(file, "top level")
    if sources is None:
        raise top.error(None, "no [sources.NAME] table: describe at least one source")
    if not isinstance(sources, dict):
        raise top.error("sources", "must be tables such as [sources.entra], not a value")
    if not sources:
        raise top.error(None, "no [sources.NAME] table: describe at least one source")
    specs: dict[str, SourceSpec] = {}
    for name, table in sources.items():
        if not SOURCE_NAME.fullmatch(name):
            raise Place(file, "[sources]").error(
                shown(name),
                "a source name is 1-63 letters, digits, _ . or -, starting with a letter or digit",
            )
        place = Place(file, source_label(name))
        if not isinstance(table, dict):
            raise place.error(None, "must be a table (type = ..., and the type's keys)")
        specs[name] = _read_source(place, name, table, folder, run)
    return specs


def _read_source(
    place: Place, name: str, table: Mapping[str, Any], folder: Path, run: RunSettings
) -> SourceSpec:
    kind = table.get("type")
    if kind is None:
        check_keys(place, table, {k for keys in SOURCE_KEYS.values() for k in keys}, {})
        raise place.error("type", f"is required: one of {', '.join(SOURCE_TYPES)}")
    if not isinstance(kind, str) or kind not in SOURCE_TYPES:
        word = kind if isinstance(kind, str) else ""
        raise place.error(
            "type", "unknown source type" + did_you_mean(word, SOURCE_TYPES, listing="one of")
        )
    check_keys(place, table, SOURCE_KEYS[kind], _other_keys(kind))
    if kind == "static":
        return StaticSource(name=name, cidrs=_static_cidrs(place, table, run))
    if "file" in table and "url" in table:
        raise place.error("file", "set file or url, not both")
    url = _url(place, table, "url")
    file = _file(place, table, folder, stdin_ok=kind == "azure-service-tags")
    if kind == "okta-ip-ranges":
        cells = text_list(place, table, "cells", required=True)
        assert cells is not None
        query = OktaQuery(
            cells=tuple(cells),
            url=url or DEFAULT_OKTA_URL,
            file=file,
            cache_dir=run.cache_dir,
            max_age_days=run.max_feed_age_days,
            timeout=run.http_timeout,
            retry=run.retry_policy(),
        )
        return OktaSource(name=name, query=query)
    cloud = text(place, table, "cloud") or "Public"
    if cloud not in CLOUDS:
        raise place.error("cloud", "unknown cloud" + did_you_mean(cloud, CLOUDS, listing="one of"))
    tags = text_list(place, table, "tags") or list(DEFAULT_TAGS)
    feed = FeedQuery(
        tags=tuple(tags),
        cloud=cloud,
        source_url=url,
        details_url=_url(place, table, "details_url"),
        download_base=_url(place, table, "download_base"),
        probe_days=run.probe_days,
        cache_dir=run.cache_dir,
        max_age_days=run.max_feed_age_days,
        timeout=run.http_timeout,
        retry=run.retry_policy(),
    )
    return AzureSource(name=name, query=feed, file=file)


def _url(place: Place, table: Mapping[str, Any], key: str) -> str | None:
    url = text(place, table, key)
    if url is None:
        return None
    try:
        check_http_url(url)
    except ValueError as exc:
        raise place.error(key, str(exc)) from None
    register_url(url)
    return url


def _file(place: Place, table: Mapping[str, Any], folder: Path, *, stdin_ok: bool) -> str | None:
    file = text(place, table, "file")
    if file is None:
        return None
    if file == STDIN:
        if not stdin_ok:
            raise place.error("file", "cannot be standard input (-) for this source type")
        return file
    return str(resolve(place, "file", folder, file))


def resolve(place: Place, key: str, folder: Path, path: str) -> Path:
    """`path` with `~` expanded; a relative path is taken from the config file's `folder`."""
    try:
        expanded = Path(path).expanduser()
    except RuntimeError:  # `~someone` with no such user, or no home folder at all
        raise place.error(key, "starts with ~ but that home folder is unknown") from None
    # Normalised (`a/../b` as `b`) without following links: paths are shown in plans and logs.
    return Path(os.path.normpath(expanded if expanded.is_absolute() else folder / expanded))


def _static_cidrs(place: Place, table: Mapping[str, Any], run: RunSettings) -> tuple[str, ...]:
    cidrs = text_list(place, table, "cidrs", required=True)
    assert cidrs is not None
    networks = []
    for text_cidr in cidrs:
        try:
            network = ipaddress.ip_network(text_cidr.strip(), strict=False)
        except ValueError:
            raise place.error("cidrs", f"{text_cidr!r} is not an IP network") from None
        problem = scope_problem(
            network,
            min_prefix_v4=run.min_prefix_length_ipv4,
            min_prefix_v6=run.min_prefix_length_ipv6,
        )
        if problem is not None:
            written = text_cidr.strip()
            shown_cidr = written if written == str(network) else f"{written} (that is {network})"
            raise place.error("cidrs", f"{shown_cidr} {problem}")
        networks.append(str(network))
    return tuple(networks)
