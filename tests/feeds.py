"""Real service-tags data for tests, and feeds made from it with chosen prefixes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"
PUBLIC_FEED = DATA / "ServiceTags_Public_20251028.trimmed.json"
#: Nothing listens on the discard port: a test that forgets to give a source fails fast here
#: instead of reaching Microsoft.
OFFLINE = {
    "ALLOWLIST_SYNC_AZURE_DETAILS_URL": "http://127.0.0.1:9/details",
    "ALLOWLIST_SYNC_AZURE_DOWNLOAD_BASE": "http://127.0.0.1:9/download",
}


def feed_doc(path: Path = PUBLIC_FEED) -> dict[str, Any]:
    """A service-tags file as a dict, to modify in a test."""
    return json.loads(path.read_text())


def aad_prefixes(doc: dict[str, Any]) -> list[str]:
    """The AzureActiveDirectory prefixes of a service-tags document."""
    entry = next(v for v in doc["values"] if v["name"] == "AzureActiveDirectory")
    return list(entry["properties"]["addressPrefixes"])


def write_feed(path: Path, prefixes: list[str], *, base: Path = PUBLIC_FEED) -> Path:
    """Write a copy of a real feed whose AzureActiveDirectory entry holds `prefixes`."""
    doc = feed_doc(base)
    entry = next(v for v in doc["values"] if v["name"] == "AzureActiveDirectory")
    entry["properties"]["addressPrefixes"] = prefixes
    path.write_text(json.dumps(doc))
    return path
