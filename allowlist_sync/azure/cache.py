"""The last good service-tags file of each cloud, kept on disk for days when Microsoft is down.

Layout of the cache folder (one pair of files per cloud):

    ServiceTags_Public.meta.json             url, fileDate, sha256, fetchedAt, etag, lastModified
    ServiceTags_Public.<sha256[:16]>.json    the body exactly as downloaded

The body is written first under a name of its own, then the metadata replaces the previous one
(each through a temporary file and `os.replace` in the same folder), so a reader sees the old entry
or the new one, never a mix and never a partial file. A reader trusts nothing: the metadata must
parse, the body must have the recorded sha256, and the caller validates the body like any download
before using it. A corrupt entry is ignored with a warning, and a cache that cannot be written only
costs a warning: the run itself never fails because of the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from allowlist_sync.azure.feed import MAX_FEED_BYTES
from allowlist_sync.logs import get_logger

log = get_logger(__name__)

APP_DIR = "allowlist-sync"
CACHE_FORMAT = 1
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FILE_DATE = re.compile(r"^\d{8}$")


@dataclass(frozen=True)
class CacheEntry:
    """A cached file and what was known when it was downloaded."""

    cloud: str
    url: str
    file_date: str | None  # YYYYMMDD
    sha256: str
    fetched_at: datetime
    etag: str | None
    last_modified: str | None
    body: bytes
    path: Path

    def age(self, now: datetime) -> timedelta:
        """How old the data is: since the older of its publication date and its download."""
        oldest = self.fetched_at
        if self.file_date is not None:
            published = datetime.strptime(self.file_date, "%Y%m%d").replace(tzinfo=UTC)
            oldest = min(oldest, published)
        return now - oldest

    def conditional_headers(self, url: str) -> dict[str, str]:
        """If-None-Match / If-Modified-Since for a request of `url`, if it is this file's URL."""
        if url != self.url:
            return {}
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


class FeedCache:
    """The cache folder: `load` the last good entry of a cloud, `store` a new one."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def meta_path(self, cloud: str) -> Path:
        """Where the metadata of `cloud`'s entry lives."""
        return self.directory / f"ServiceTags_{cloud}.meta.json"

    def body_path(self, cloud: str, sha256: str) -> Path:
        """Where a body with this sha256 lives: a name of its own, so a rename never tears it."""
        return self.directory / f"ServiceTags_{cloud}.{sha256[:16]}.json"

    def load(self, cloud: str) -> CacheEntry | None:
        """The cached entry of `cloud`, or None when there is none or it is corrupt (warned)."""
        try:
            return self._read(cloud)
        except FileNotFoundError:
            log.info("cache_empty", cloud=cloud, path=str(self.meta_path(cloud)))
        except _CorruptError as exc:
            log.warning("cache_ignored", path=str(exc.path), reason=exc.reason)
        return None

    def _read(self, cloud: str) -> CacheEntry:
        meta_path = self.meta_path(cloud)
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
        problem = _check_meta(meta, cloud)
        if problem:
            raise _CorruptError(meta_path, problem)
        body_path = self.body_path(cloud, meta["sha256"])
        try:
            with body_path.open("rb") as handle:
                body = handle.read(MAX_FEED_BYTES + 1)
        except OSError as exc:
            reason = f"cannot read the cached file: {exc.strerror}"
            raise _CorruptError(body_path, reason) from None
        if hashlib.sha256(body).hexdigest() != meta["sha256"]:
            raise _CorruptError(body_path, "the cached file does not match its recorded sha256")
        return CacheEntry(
            cloud=cloud,
            url=meta["url"],
            file_date=meta.get("fileDate"),
            sha256=meta["sha256"],
            fetched_at=datetime.fromisoformat(meta["fetchedAt"]),
            etag=meta.get("etag"),
            last_modified=meta.get("lastModified"),
            body=body,
            path=body_path,
        )

    def store(
        self,
        *,
        cloud: str,
        url: str,
        file_date: str | None,
        body: bytes,
        fetched_at: datetime,
        etag: str | None = None,
        last_modified: str | None = None,
    ) -> CacheEntry | None:
        """Keep `body` as the last good file of `cloud`; None (and a warning) if it cannot be."""
        sha256 = hashlib.sha256(body).hexdigest()
        body_path = self.body_path(cloud, sha256)
        meta = _meta(cloud, url, file_date, sha256, len(body), fetched_at, etag, last_modified)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            write_atomically(body_path, body)
            write_atomically(self.meta_path(cloud), orjson.dumps(meta, option=orjson.OPT_INDENT_2))
        except OSError as exc:
            log.warning(
                "cache_write_failed", path=str(self.directory), error=exc.strerror or str(exc)
            )
            return None
        self._remove_other_bodies(cloud, keep=body_path)
        log.info("cache_stored", path=str(body_path), url=url, file_date=file_date, size=len(body))
        return CacheEntry(
            cloud=cloud,
            url=url,
            file_date=file_date,
            sha256=sha256,
            fetched_at=fetched_at,
            etag=etag,
            last_modified=last_modified,
            body=body,
            path=body_path,
        )

    def refresh(
        self,
        entry: CacheEntry,
        *,
        fetched_at: datetime,
        etag: str | None,
        last_modified: str | None,
    ) -> CacheEntry | None:
        """Record that `entry` was confirmed current (a 304): new fetchedAt and validators.

        Only the metadata is rewritten; the body stays as it is. None (and a warning) if the
        metadata cannot be written: the entry then keeps its older facts.
        """
        meta = _meta(
            entry.cloud,
            entry.url,
            entry.file_date,
            entry.sha256,
            len(entry.body),
            fetched_at,
            etag,
            last_modified,
        )
        try:
            write_atomically(
                self.meta_path(entry.cloud), orjson.dumps(meta, option=orjson.OPT_INDENT_2)
            )
        except OSError as exc:
            log.warning(
                "cache_write_failed", path=str(self.directory), error=exc.strerror or str(exc)
            )
            return None
        log.info("cache_refreshed", url=entry.url, fetched_at=meta["fetchedAt"], etag=etag)
        return replace(entry, fetched_at=fetched_at, etag=etag, last_modified=last_modified)

    def _remove_other_bodies(self, cloud: str, *, keep: Path) -> None:
        for old in self.directory.glob(f"ServiceTags_{cloud}.*.json"):
            if old != keep and old != self.meta_path(cloud):
                with contextlib.suppress(OSError):
                    old.unlink()


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and `os.replace`."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """`$XDG_CACHE_HOME/allowlist-sync`, else `~/.cache/allowlist-sync`, else a private temp dir."""
    env = os.environ if environ is None else environ
    candidates = []
    xdg = env.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):
        candidates.append(Path(xdg) / APP_DIR)
    home = env.get("HOME", "")
    if os.path.isabs(home):
        candidates.append(Path(home) / ".cache" / APP_DIR)
    for candidate in candidates:
        if _usable_dir(candidate):
            return candidate
    # No writable home (a container with a read-only root and an arbitrary uid): use /tmp.
    fallback = Path(tempfile.gettempdir()) / f"{APP_DIR}-{_uid()}"
    if _private_dir(fallback):
        return fallback
    try:
        return Path(tempfile.mkdtemp(prefix=f"{APP_DIR}-"))
    except OSError:
        return fallback  # nothing is writable: loads find nothing, stores only warn


def _meta(
    cloud: str,
    url: str,
    file_date: str | None,
    sha256: str,
    size: int,
    fetched_at: datetime,
    etag: str | None,
    last_modified: str | None,
) -> dict[str, Any]:
    return {
        "format": CACHE_FORMAT,
        "cloud": cloud,
        "url": url,
        "fileDate": file_date,
        "sha256": sha256,
        "size": size,
        "fetchedAt": fetched_at.astimezone(UTC).isoformat(),
        "etag": etag,
        "lastModified": last_modified,
    }


def _check_meta(meta: Any, cloud: str) -> str | None:
    """What is wrong with a metadata document, or None."""
    if not isinstance(meta, dict):
        return "the metadata is not a JSON object"
    if meta.get("format") != CACHE_FORMAT:
        return f"unknown cache format {meta.get('format')!r}"
    if meta.get("cloud") != cloud:
        return f"the entry is for cloud {meta.get('cloud')!r}, not {cloud!r}"
    if not isinstance(meta.get("url"), str) or not meta["url"]:
        return "the metadata has no url"
    if not isinstance(meta.get("sha256"), str) or not _SHA256.match(meta["sha256"]):
        return "the metadata has no valid sha256"
    file_date = meta.get("fileDate")
    if file_date is not None and not (isinstance(file_date, str) and _is_file_date(file_date)):
        return "the metadata has an invalid fileDate"
    for key in ("etag", "lastModified"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
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


def _is_file_date(text: str) -> bool:
    if not _FILE_DATE.match(text):
        return False
    try:
        datetime.strptime(text, "%Y%m%d")
    except ValueError:
        return False
    return True


class _CorruptError(Exception):
    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(reason)


def _usable_dir(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK | os.X_OK)


def _private_dir(path: Path) -> bool:
    """A folder in a shared /tmp is used only if it is ours and nobody else may write to it."""
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        info = path.lstat()
    except OSError:
        return False
    if not path.is_dir() or path.is_symlink():
        return False
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        return False
    return not info.st_mode & 0o022


def _uid() -> str:
    return str(os.getuid()) if hasattr(os, "getuid") else "user"


def _fsync_dir(directory: Path) -> None:
    # Make the rename itself durable; not every platform or filesystem allows it.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
