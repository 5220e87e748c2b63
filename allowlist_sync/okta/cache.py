"""The last good copy of Okta's ranges file, kept on disk for the days the download fails.

One pair of files per URL, in the same folder as the Azure cache but under names of their own:

    okta_ip_ranges.<url key>.meta.json           url (shown form), sha256, fetchedAt, etag, ...
    okta_ip_ranges.<url key>.<sha256[:16]>.json  the body exactly as downloaded

The url key is a hash of the URL, so a mirror and Okta's own URL never share an entry, and a
signed URL's secret is never written to disk (the metadata keeps the URL as it may be shown).
Writes are atomic (`write_atomically`: a body under a name of its own, then the metadata); a
reader trusts nothing: the metadata must parse and the body must have its recorded sha256, and
the caller validates the body like a download before using it. A corrupt entry is ignored with a
warning; a cache that cannot be written costs a warning, never the run.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from allowlist_sync.azure.cache import write_atomically
from allowlist_sync.logs import display_url, get_logger
from allowlist_sync.okta.ranges import MAX_OKTA_BYTES

log = get_logger(__name__)

CACHE_FORMAT = 1
_PREFIX = "okta_ip_ranges"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_HEADER_VALUE = re.compile(r"[\x20-\x7e]{1,1024}")


@dataclass(frozen=True)
class OktaCacheEntry:
    """A cached body and what was known when it was last downloaded or confirmed current."""

    url: str  # as it may be shown
    sha256: str
    #: When the server last gave this body or said it was still current (a 304).
    fetched_at: datetime
    etag: str | None
    last_modified: str | None
    body: bytes
    path: Path

    def conditional_headers(self) -> dict[str, str]:
        """If-None-Match / If-Modified-Since naming this copy."""
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


class OktaCache:
    """The cache folder: `load` the last good copy of a URL, `store` or `refresh` it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def meta_path(self, url: str) -> Path:
        """Where the metadata of `url`'s entry lives."""
        return self.directory / f"{_PREFIX}.{url_key(url)}.meta.json"

    def body_path(self, url: str, sha256: str) -> Path:
        """Where a body of `url` with this sha256 lives."""
        return self.directory / f"{_PREFIX}.{url_key(url)}.{sha256[:16]}.json"

    def load(self, url: str) -> OktaCacheEntry | None:
        """The cached copy of `url`, or None when there is none or it is corrupt (warned)."""
        try:
            return self._read(url)
        except FileNotFoundError:
            log.info("okta_cache_empty", path=str(self.meta_path(url)))
        except _CorruptError as exc:
            log.warning("okta_cache_ignored", path=str(exc.path), reason=exc.reason)
        return None

    def store(
        self,
        url: str,
        *,
        body: bytes,
        fetched_at: datetime,
        etag: str | None,
        last_modified: str | None,
    ) -> OktaCacheEntry | None:
        """Keep `body` as the last good copy of `url`; None (and a warning) if it cannot be."""
        sha256 = hashlib.sha256(body).hexdigest()
        entry = OktaCacheEntry(
            url=display_url(url),
            sha256=sha256,
            fetched_at=fetched_at,
            etag=_validator(etag),
            last_modified=_validator(last_modified),
            body=body,
            path=self.body_path(url, sha256),
        )
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            write_atomically(entry.path, body)
            self._write_meta(url, entry)
        except OSError as exc:
            log.warning(
                "okta_cache_write_failed", path=str(self.directory), error=exc.strerror or str(exc)
            )
            return None
        self._remove_other_bodies(url, keep=entry.path)
        log.info("okta_cache_stored", path=str(entry.path), url=entry.url, size=len(body))
        return entry

    def refresh(
        self,
        url: str,
        entry: OktaCacheEntry,
        *,
        fetched_at: datetime,
        etag: str | None,
        last_modified: str | None,
    ) -> OktaCacheEntry | None:
        """Record that `entry` was confirmed current (a 304): only the metadata is rewritten."""
        fresh = replace(
            entry,
            fetched_at=fetched_at,
            etag=_validator(etag),
            last_modified=_validator(last_modified),
        )
        try:
            self._write_meta(url, fresh)
        except OSError as exc:
            log.warning(
                "okta_cache_write_failed", path=str(self.directory), error=exc.strerror or str(exc)
            )
            return None
        return fresh

    def _write_meta(self, url: str, entry: OktaCacheEntry) -> None:
        meta = {
            "format": CACHE_FORMAT,
            "source": "okta",
            "url": entry.url,
            "sha256": entry.sha256,
            "size": len(entry.body),
            "fetchedAt": entry.fetched_at.astimezone(UTC).isoformat(),
            "etag": entry.etag,
            "lastModified": entry.last_modified,
        }
        write_atomically(self.meta_path(url), orjson.dumps(meta, option=orjson.OPT_INDENT_2))

    def _read(self, url: str) -> OktaCacheEntry:
        meta_path = self.meta_path(url)
        try:
            raw = meta_path.read_bytes()
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise _CorruptError(meta_path, f"cannot read the metadata: {exc.strerror}") from None
        try:
            meta = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise _CorruptError(meta_path, "the metadata is not valid JSON") from None
        problem = _check_meta(meta)
        if problem:
            raise _CorruptError(meta_path, problem)
        body_path = self.body_path(url, meta["sha256"])
        try:
            with body_path.open("rb") as handle:
                body = handle.read(MAX_OKTA_BYTES + 1)
        except OSError as exc:
            raise _CorruptError(body_path, f"cannot read the cached file: {exc.strerror}") from None
        if hashlib.sha256(body).hexdigest() != meta["sha256"]:
            raise _CorruptError(body_path, "the cached file does not match its recorded sha256")
        return OktaCacheEntry(
            url=meta["url"],
            sha256=meta["sha256"],
            fetched_at=datetime.fromisoformat(meta["fetchedAt"]),
            etag=meta.get("etag"),
            last_modified=meta.get("lastModified"),
            body=body,
            path=body_path,
        )

    def _remove_other_bodies(self, url: str, *, keep: Path) -> None:
        meta = self.meta_path(url)
        for old in self.directory.glob(f"{_PREFIX}.{url_key(url)}.*.json"):
            if old not in (keep, meta):
                with contextlib.suppress(OSError):
                    old.unlink()


def url_key(url: str) -> str:
    """A name-safe key of `url` that reveals nothing of it (signed URLs carry keys)."""
    return hashlib.sha256(url.encode("utf-8", errors="surrogatepass")).hexdigest()[:16]


def _validator(value: str | None) -> str | None:
    """An ETag / Last-Modified worth keeping: one that can be sent back as a header."""
    return value if value is not None and _HEADER_VALUE.fullmatch(value) else None


def _check_meta(meta: Any) -> str | None:
    """What is wrong with a metadata document, or None."""
    if not isinstance(meta, dict):
        return "the metadata is not a JSON object"
    if meta.get("format") != CACHE_FORMAT or meta.get("source") != "okta":
        return f"unknown cache format {meta.get('format')!r}"
    if not isinstance(meta.get("url"), str) or not meta["url"]:
        return "the metadata has no url"
    if not isinstance(meta.get("sha256"), str) or not _SHA256.fullmatch(meta["sha256"]):
        return "the metadata has no valid sha256"
    for key in ("etag", "lastModified"):
        value = meta.get(key)
        # Sent back as a request header: printable ASCII only, or every request would fail.
        if value is not None and not (isinstance(value, str) and _HEADER_VALUE.fullmatch(value)):
            return f"the metadata has an invalid {key}"
    fetched_at = meta.get("fetchedAt")
    if not isinstance(fetched_at, str):
        return "the metadata has no fetchedAt"
    try:
        when = datetime.fromisoformat(fetched_at)
    except ValueError:
        return "the metadata has an invalid fetchedAt"
    if when.tzinfo is None:
        return "the metadata's fetchedAt has no time zone"
    return None


class _CorruptError(Exception):
    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(reason)
