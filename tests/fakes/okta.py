"""A fake of Okta's S3 host on a real loopback HTTP server, for the Okta source's tests.

It serves `/okta-ip-ranges/ip_ranges.json` as S3 does: the body with an ETag (a hash of the
body) and a Last-Modified, and 304 to a request naming the current copy. Switches for the ways
it can go wrong: an outage (every answer a status, 500 by default), an HTML page, any body a
test sets, a body without Content-Length (streamed until the connection closes), a redirect.
Every request is recorded (path, status, headers) for assertions. Attributes can be changed at
any time; the next request sees them.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import TracebackType
from typing import Any

from allowlist_sync.net.httpserver import LocalHTTPServer

DATA = Path(__file__).resolve().parents[1] / "data"
SNAPSHOT = DATA / "okta_ip_ranges_20220307.json"
PATH = "/okta-ip-ranges/ip_ranges.json"
#: The snapshot's Last-Modified as Okta's S3 bucket served it.
SNAPSHOT_LAST_MODIFIED = "Mon, 07 Mar 2022 16:14:12 GMT"
HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>503 Service Unavailable</title></head>"
    b"<body><h1>Service Unavailable</h1></body></html>\n"
)
XML_ERROR = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Access Denied</Message></Error>"
)


def snapshot_doc() -> dict[str, Any]:
    """The real 2022-03-07 file as a dict, to modify."""
    doc: dict[str, Any] = json.loads(SNAPSHOT.read_text())
    return doc


def okta_body(doc: dict[str, Any] | None = None) -> bytes:
    """A body in Okta's layout (compact, as S3 serves it): `doc`, else the real snapshot."""
    if doc is None:
        return SNAPSHOT.read_bytes()
    return json.dumps(doc, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Request:
    """One request the fake answered."""

    method: str
    path: str
    status: int
    headers: dict[str, str]


@dataclass
class OktaS3:
    """The fake host; change its attributes at any time, the next request sees them."""

    body: bytes = field(default_factory=okta_body)
    last_modified: str | None = SNAPSHOT_LAST_MODIFIED
    #: Send ETag / Last-Modified and answer conditional requests with 304.
    conditional: bool = True
    #: Answer every request with this status and a small error body (an outage).
    outage_status: int | None = None
    #: Send Content-Length; without it the body is streamed until the connection closes.
    content_length: bool = True
    #: Answer the file's path with a 302 to this URL instead of the file.
    redirect_to: str | None = None
    content_type: str = "application/json"
    #: Send this ETag instead of the body's hash (a server's odd validator).
    etag_value: str | None = None
    requests: list[Request] = field(default_factory=list)
    _server: LocalHTTPServer | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _port: int | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def base(self) -> str:
        """Base URL of the running fake, e.g. http://127.0.0.1:54321."""
        if self._port is None:
            raise RuntimeError("the fake Okta host was never started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def url(self) -> str:
        """The ranges file's URL on the fake (Okta's path)."""
        return f"{self.base}{PATH}"

    @property
    def etag(self) -> str:
        """The ETag of the current body (S3's is the MD5; any stable hash does here)."""
        if self.etag_value is not None:
            return self.etag_value
        return f'"{hashlib.sha256(self.body).hexdigest()[:32]}"'

    def serve_html(self) -> None:
        """Answer 200 with an HTML page (a captive portal or a proxy's error page)."""
        self.body = HTML_PAGE
        self.content_type = "text/html"

    def file_requests(self) -> list[Request]:
        """The requests made so far, in order."""
        with self._lock:
            return list(self.requests)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> OktaS3:
        """Serve on a free loopback port from a daemon thread."""
        server = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self._server = server
        self._port = server.server_port
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; the port then refuses connections. Idempotent."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=2)

    def __enter__(self) -> OktaS3:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ answers

    def answer(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body for one GET."""
        if self.outage_status is not None:
            return self.outage_status, {"Content-Type": "application/xml"}, XML_ERROR
        if path.split("?", 1)[0] != PATH:
            return 404, {"Content-Type": "application/xml"}, XML_ERROR
        if self.redirect_to is not None:
            return 302, {"Location": self.redirect_to}, b""
        out = {"Content-Type": self.content_type}
        if not self.conditional:
            return 200, out, self.body
        out["ETag"] = self.etag
        if self.last_modified is not None:
            out["Last-Modified"] = self.last_modified
        if headers.get("if-none-match") == self.etag or (
            "if-none-match" not in headers
            and self.last_modified is not None
            and headers.get("if-modified-since") == self.last_modified
        ):
            return 304, out, b""
        return 200, out, self.body

    def record(self, request: Request) -> None:
        """Remember a request."""
        with self._lock:
            self.requests.append(request)


class _QuietServer(LocalHTTPServer):
    """No traceback on stderr when a client hangs up mid-body (the size-limit tests do)."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        return


def _handler_for(fake: OktaS3) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, out, body = fake.answer(self.path, headers)
            fake.record(Request("GET", self.path, status, headers))
            self.send_response(status)
            for name, value in out.items():
                self.send_header(name, value)
            if status == 304:
                self.end_headers()
                return
            if fake.content_length or status != 200:
                self.send_header("Content-Length", str(len(body)))
            else:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
