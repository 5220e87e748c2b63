"""A fake of Microsoft's Download Center on a real loopback HTTP server, for discovery tests.

It serves what allowlist-sync reads from Microsoft, at the same paths, on 127.0.0.1:

    /en-us/download/details.aspx?id=<id>     a details page shaped like Microsoft's: the file link
                                              sits inside a page script, as JSON with escapes
    /download/<folder>/ServiceTags_<Cloud>_YYYYMMDD.json   the direct-download files, by date
    /mirror/<name>                            files of a mirror, without a dated name

and has a switch for each way the real site has failed: blocked unless the client looks like a
browser (403), the page down (500/404), a page without a link, a whole outage, bodies that are
HTML, truncated, for the wrong cloud, without the tag or with an empty tag; ETag/Last-Modified
with 304 answers. Every request is recorded (method, path, status, headers) for assertions.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

DATA = Path(__file__).resolve().parents[1] / "data"
TRIMMED = {
    "Public": DATA / "ServiceTags_Public_20251028.trimmed.json",
    "AzureGovernment": DATA / "ServiceTags_AzureGovernment_20260720.trimmed.json",
    "China": DATA / "ServiceTags_China_20260720.trimmed.json",
}
#: The same download ids and folders as Microsoft's (allowlist_sync/azure/clouds.py).
IDS = {"Public": 56519, "AzureGovernment": 57063, "China": 57062}
FOLDERS = {
    "Public": "/download/7/1/D/71D86715-5596-4529-9B13-DA13A5DE5B63",
    "AzureGovernment": "/download/6/4/D/64DB03BF-895B-4173-A8B1-BA4AD5D4DF22",
    "China": "/download/9/D/0/9D03B7E2-4B80-4BF3-9B91-DA8C7D3EE9F9",
}
TAG = "AzureActiveDirectory"
HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>We're sorry, this download is no longer available"
    b"</title></head><body><h1>Microsoft</h1></body></html>\n"
)


def feed_doc(cloud: str = "Public") -> dict[str, Any]:
    """A real (trimmed) service-tags document of `cloud`, to modify."""
    doc: dict[str, Any] = json.loads(TRIMMED[cloud].read_text())
    return doc


def feed_body(cloud: str = "Public", **changes: Any) -> bytes:
    """A real trimmed file as bytes, optionally changed (see `changed_doc`)."""
    return json.dumps(changed_doc(feed_doc(cloud), **changes), indent=2).encode()


def changed_doc(
    doc: dict[str, Any],
    *,
    cloud: str | None = None,
    drop_tag: bool = False,
    prefixes: list[str] | None = None,
    change_number: int | None = None,
) -> dict[str, Any]:
    """`doc` with another `cloud` or `changeNumber`, without the tag, or other tag prefixes."""
    if cloud is not None:
        doc["cloud"] = cloud
    if change_number is not None:
        doc["changeNumber"] = change_number
    if drop_tag:
        doc["values"] = [v for v in doc["values"] if v["name"] != TAG]
    if prefixes is not None:
        entry = next(v for v in doc["values"] if v["name"] == TAG)
        entry["properties"]["addressPrefixes"] = prefixes
    return doc


def tag_prefixes(body: bytes) -> list[str]:
    """The tag's prefixes in a service-tags body."""
    doc = json.loads(body)
    entry = next(v for v in doc["values"] if v["name"] == TAG)
    return list(entry["properties"]["addressPrefixes"])


def day(offset: int = 0, today: date | None = None) -> str:
    """YYYYMMDD of `offset` days before `today` (default: today in UTC, as discovery uses)."""
    base = today or datetime.now(UTC).date()
    return f"{base - timedelta(days=offset):%Y%m%d}"


@dataclass(frozen=True)
class Request:
    """One request the fake answered."""

    method: str
    path: str
    status: int
    headers: dict[str, str]


@dataclass
class DownloadCenter:
    """The fake site; change its attributes at any time, the next request sees them."""

    cloud: str = "Public"
    #: Direct-download files: YYYYMMDD -> body.
    files: dict[str, bytes] = field(default_factory=dict)
    #: Status to answer for a file date instead of the file (e.g. 500).
    file_status: dict[str, int] = field(default_factory=dict)
    #: Dates the details page links to; None: the newest of `files`.
    link_dates: list[str] | None = None
    #: Status of the details page (200, or 500/404 for "page down").
    page_status: int = 200
    #: Escape the link like a JSON string in a script (`https:\/\/...`), as Microsoft's page does.
    escape_links: bool = True
    #: Answer 403 to any client that does not send a browser User-Agent.
    require_browser_ua: bool = False
    #: Send ETag / Last-Modified and answer conditional requests with 304.
    conditional: bool = True
    #: Answer every request with this status (a whole-site outage).
    outage_status: int | None = None
    #: Files of a mirror without Microsoft's names: `/mirror/<name>` -> (body, Last-Modified).
    mirror: dict[str, tuple[bytes, str | None]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _port: int | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # ------------------------------------------------------------------ URLs tests configure

    @property
    def url(self) -> str:
        """Base URL of the running fake, e.g. http://127.0.0.1:54321."""
        if self._port is None:
            raise RuntimeError("the fake download center was never started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def details_url(self) -> str:
        """The details page, as ALLOWLIST_SYNC_AZURE_DETAILS_URL."""
        return f"{self.url}/en-us/download/details.aspx?id={IDS[self.cloud]}"

    @property
    def download_base(self) -> str:
        """The direct-download folder, as ALLOWLIST_SYNC_AZURE_DOWNLOAD_BASE."""
        return f"{self.url}{FOLDERS[self.cloud]}"

    def file_url(self, file_date: str) -> str:
        """The URL of the file of `file_date`."""
        return f"{self.download_base}/ServiceTags_{self.cloud}_{file_date}.json"

    def mirror_url(self, name: str) -> str:
        """The URL of the mirror file `name` (see `mirror`)."""
        return f"{self.url}/mirror/{name}"

    def env(self) -> dict[str, str]:
        """The environment that points allowlist-sync at this fake."""
        return {
            "ALLOWLIST_SYNC_AZURE_CLOUD": self.cloud,
            "ALLOWLIST_SYNC_AZURE_DETAILS_URL": self.details_url,
            "ALLOWLIST_SYNC_AZURE_DOWNLOAD_BASE": self.download_base,
        }

    def file_requests(self) -> list[Request]:
        """The requests for files (not for the details page)."""
        with self._lock:
            return [r for r in self.requests if r.path.endswith(".json")]

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> DownloadCenter:
        """Serve on a free loopback port from a daemon thread."""
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._port = server.server_port
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: the port then refuses connections (the site is unreachable); idempotent.

        The URLs stay as they were, so settings made while it ran now point at a dead port.
        """
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=2)

    def __enter__(self) -> DownloadCenter:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ answers

    def answer(
        self, method: str, target: str, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body for one request."""
        parts = urlsplit(target)
        if self.outage_status is not None:
            return self.outage_status, {}, b"Service Unavailable"
        if self.require_browser_ua and "Mozilla/" not in headers.get("user-agent", ""):
            return 403, {"Content-Type": "text/html"}, b"<html><body>Access Denied</body></html>"
        if parts.path == "/en-us/download/details.aspx":
            wanted = parse_qs(parts.query).get("id", [""])[0]
            if self.page_status != 200 or wanted != str(IDS[self.cloud]):
                status = self.page_status if self.page_status != 200 else 404
                return status, {"Content-Type": "text/html"}, HTML_PAGE
            return 200, {"Content-Type": "text/html; charset=utf-8"}, self.details_page()
        if parts.path.startswith("/mirror/") and parts.path[len("/mirror/") :] in self.mirror:
            body, modified = self.mirror[parts.path[len("/mirror/") :]]
            out = {"Content-Type": "application/json"}
            if modified is not None:
                out["Last-Modified"] = modified
            return 200, out, body
        prefix = f"{FOLDERS[self.cloud]}/ServiceTags_{self.cloud}_"
        if parts.path.startswith(prefix) and parts.path.endswith(".json"):
            file_date = parts.path[len(prefix) : -len(".json")]
            if file_date in self.file_status:
                return self.file_status[file_date], {}, b"error"
            if file_date in self.files:
                return self._file(self.files[file_date], file_date, headers)
        return 404, {"Content-Type": "text/html"}, HTML_PAGE

    def details_page(self) -> bytes:
        """A page like Microsoft's: the links inside a script's JSON, not in an <a href>."""
        dates = self.link_dates
        if dates is None:
            dates = sorted(self.files, reverse=True)[:1]
        entries = []
        for file_date in dates:
            link = self.file_url(file_date)
            if self.escape_links:
                link = link.replace("/", "\\/")
            entries.append(
                f'{{"name":"ServiceTags_{self.cloud}_{file_date}.json","url":"{link}",'
                f'"size":"4.1 MB","version":"{file_date}"}}'
            )
        cloud_id = IDS[self.cloud]
        script = (
            f'window.__DLCDetails__={{"dlcDetailsView":{{"id":"{cloud_id}",'
            f'"title":"Azure IP Ranges and Service Tags","downloadFile":[{",".join(entries)}]}}}};'
        )
        page = (
            '<!DOCTYPE html><html lang="en-us"><head><title>Download Azure IP Ranges and '
            "Service Tags from Official Microsoft Download Center</title></head><body>"
            f'<div id="root"></div><p>ServiceTags_{self.cloud}_YYYYMMDD.json</p>'
            f"<script>{script}</script></body></html>"
        )
        return page.encode()

    def _file(
        self, body: bytes, file_date: str, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        out = {"Content-Type": "application/octet-stream"}
        if not self.conditional:
            return 200, out, body
        etag = f'"{hashlib.sha256(body).hexdigest()[:16]}"'
        published = datetime.strptime(file_date, "%Y%m%d").replace(tzinfo=UTC)
        last_modified = email.utils.format_datetime(published, usegmt=True)
        out.update({"ETag": etag, "Last-Modified": last_modified})
        if headers.get("if-none-match") == etag or (
            "if-none-match" not in headers and headers.get("if-modified-since") == last_modified
        ):
            return 304, out, b""
        return 200, out, body

    def record(self, request: Request) -> None:
        """Remember a request."""
        with self._lock:
            self.requests.append(request)


def _handler_for(center: DownloadCenter) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, out, body = center.answer("GET", self.path, headers)
            center.record(Request("GET", self.path, status, headers))
            self.send_response(status)
            for name, value in out.items():
                self.send_header(name, value)
            if status != 304:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if status != 304:
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
