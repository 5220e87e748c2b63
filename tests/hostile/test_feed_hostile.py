"""A hostile or broken feed server: redirects, signed URLs, huge bodies, duplicate tags, rollback.

Each server here is a few lines of stdlib `http.server` on loopback, owned by the test; the dbt
side is the project's emulator. Every test pins what was requested or read, never a duration.
"""

from __future__ import annotations

import email.utils
import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from allowlist_sync.azure.cache import FeedCache
from allowlist_sync.azure.feed import MAX_FEED_BYTES
from allowlist_sync.azure.fetch import MAX_REDIRECTS, UnavailableError, fetch
from allowlist_sync.azure.source import load_feed
from allowlist_sync.config import Settings
from allowlist_sync.emulator import EmulatorServer, EmulatorStore
from allowlist_sync.errors import FeedError
from allowlist_sync.net.retries import RetryPolicy
from allowlist_sync.sync import RunOptions, run_once
from tests.cli import cli_env, run_cli
from tests.emulated import emulator_settings
from tests.fakes.download_center import DownloadCenter, day, feed_body, tag_prefixes

RETRY = RetryPolicy(attempts=1, max_seconds=5, backoff=0)
SECRET = "sig=Zm9vYmFyU0VDUkVUc2lnbmF0dXJl"
SIGNED_QUERY = f"sv=2024-05-04&se=2030-01-01&sp=r&{SECRET}"
CHUNK = 64 * 1024
#: 159 MiB: the size of the body the servers below claim or stream.
HUGE = 166_723_584

#: A route answers a path on a port with (status, headers, body chunks), written as they come.
Route = Callable[[str, int], tuple[int, dict[str, str], Iterator[bytes]]]


class Server:
    """A loopback HTTP server answering every GET through `route`, recording paths and bytes."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self.paths: list[str] = []
        self.sent = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.paths.append(self.path)
                status, headers, chunks = server.route(self.path, server.httpd.server_port)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                try:
                    for chunk in chunks:
                        self.wfile.write(chunk)
                        server.sent += len(chunk)
                except OSError:  # the client hung up, as it should on a huge body
                    return

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.httpd.server_port}"

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def body(data: bytes) -> Iterator[bytes]:
    """One body, written in one go."""
    yield data


def endless(total: int) -> Iterator[bytes]:
    """`total` bytes of whitespace, 64 KiB at a time, produced only as the client reads."""
    block = b" " * CHUNK
    for _ in range(total // CHUNK):
        yield block


def fresh_headers(size: int) -> dict[str, str]:
    """Headers of a feed published an hour ago."""
    modified = email.utils.format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)
    return {"Content-Length": str(size), "Last-Modified": modified}


def hostile(path: str, port: int) -> tuple[int, dict[str, str], Iterator[bytes]]:
    """The routes of a server that tries every trick on the redirect and size paths."""
    feed = feed_body()
    if path.startswith("/loop/"):
        hop = int(path.rsplit("/", 1)[1])
        return 302, {"Location": f"/loop/{hop + 1}", "Content-Length": "0"}, body(b"")
    if path == "/to-plain-http":
        target = "http://192.0.2.1/ServiceTags_Public_20251027.json"  # TEST-NET-1: no one there
        return 301, {"Location": target, "Content-Length": "0"}, body(b"")
    if path == "/signed":
        return (
            302,
            {"Location": f"/blob/feed.json?{SIGNED_QUERY}", "Content-Length": "0"},
            body(b""),
        )
    if path == "/signed-missing":
        location = f"/blob/gone.json?{SIGNED_QUERY}#frag-{SECRET}"
        return 302, {"Location": location, "Content-Length": "0"}, body(b"")
    if path == f"/blob/feed.json?{SIGNED_QUERY}":
        return 200, fresh_headers(len(feed)), body(feed)
    if path == "/to-invalid":
        location = "https://example.invalid/" + "a" * 70000  # longer than any URL httpx sends
        return 302, {"Location": location, "Content-Length": "0"}, body(b"")
    if path == "/with-password":
        location = f"http://user:Pa55w0rdSECRET@127.0.0.1:{port}/gone.json"
        return 302, {"Location": location, "Content-Length": "0"}, body(b"")
    if path == "/huge-declared":
        return 200, {"Content-Length": str(HUGE)}, endless(HUGE)
    if path == "/huge-streamed":  # no Content-Length: the body ends when the server closes
        return 200, {"Connection": "close"}, endless(HUGE)
    return 404, {"Content-Length": "9"}, body(b"not found")


@pytest.fixture
def server() -> Iterator[Server]:
    """The hostile server on a free loopback port."""
    with Server(hostile) as running:
        yield running


class Recording(httpx.HTTPTransport):
    """A real transport that records every URL it is asked to send a request to."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(str(request.url))
        return super().handle_request(request)


# ---------------------------------------------------------------- redirects


def test_redirect_loop_stops_after_five_hops(server: Server) -> None:
    """A server redirecting forever is asked MAX_REDIRECTS + 1 times, then the URL is unusable."""
    with httpx.Client() as client, pytest.raises(UnavailableError, match="more than 5 redirects"):
        fetch(client, f"{server.url}/loop/0", retry=RETRY, max_bytes=MAX_FEED_BYTES)
    assert server.paths == [f"/loop/{n}" for n in range(MAX_REDIRECTS + 1)]


def test_redirect_to_plain_http_elsewhere_is_refused_unfetched(server: Server) -> None:
    """A hop to plain http on a non-loopback host is refused and never requested."""
    transport = Recording()
    with httpx.Client(transport=transport) as client, pytest.raises(FeedError) as info:
        fetch(client, f"{server.url}/to-plain-http", retry=RETRY, max_bytes=MAX_FEED_BYTES)
    assert not isinstance(info.value, UnavailableError)  # discovery must stop, not move on
    assert "refusing the URL: it must use https" in str(info.value)
    assert transport.urls == [f"{server.url}/to-plain-http"]


def test_redirect_to_an_invalid_url_is_a_feed_error(server: Server) -> None:
    """A Location httpx cannot send to is a one-line FeedError, not a crash, and is not sent."""
    transport = Recording()
    with httpx.Client(transport=transport) as client, pytest.raises(FeedError) as info:
        fetch(client, f"{server.url}/to-invalid", retry=RETRY, max_bytes=MAX_FEED_BYTES)
    assert "Invalid URL in location header" in str(info.value) and "\n" not in str(info.value)
    assert transport.urls == [f"{server.url}/to-invalid"]


def test_url_httpx_cannot_send_is_refused_unsent() -> None:
    """A URL with a control character (a details page can carry one) is refused, not a crash."""
    transport = Recording()
    with httpx.Client(transport=transport) as client, pytest.raises(FeedError) as info:
        fetch(
            client,
            "https://download.example/\x00/ServiceTags_Public_20251027.json",
            retry=RETRY,
            max_bytes=MAX_FEED_BYTES,
        )
    assert "refusing the URL: it must not contain whitespace or control characters" in str(
        info.value
    )
    assert transport.urls == []


def test_password_in_a_redirect_is_a_secret(server: Server) -> None:
    """A hop carrying user:password is refused unfetched (httpx would send it as Basic auth) and
    the password is in no message."""
    with httpx.Client() as client, pytest.raises(FeedError) as info:
        fetch(client, f"{server.url}/with-password", retry=RETRY, max_bytes=MAX_FEED_BYTES)
    assert "must not carry user-info" in str(info.value)
    assert "Pa55w0rdSECRET" not in str(info.value)


@pytest.mark.parametrize("output", ["json", "text"])
def test_signed_query_of_a_redirect_never_shows(
    output: str, server: Server, emulator: EmulatorServer
) -> None:
    """A redirect to a signed URL works, and its query is in no log, plan or JSON output."""
    argv = ["sync", "--dry-run", "--source-url", f"{server.url}/signed"]
    result = run_cli(
        *argv, *(["--output", "json"] if output == "json" else []), env=cli_env(emulator)
    )
    assert result.code == 0, result.stderr
    assert server.paths == ["/signed", f"/blob/feed.json?{SIGNED_QUERY}"]
    for text in (result.stdout, result.stderr):
        assert "Zm9vYmFyU0VDUkVUc2lnbmF0dXJl" not in text and "2030-01-01" not in text
    if output == "json":
        assert result.json()["source"]["url"] == f"{server.url}/blob/feed.json?<redacted>"
    else:
        assert f"{server.url}/blob/feed.json?<redacted>" in result.stdout


def test_signed_query_stays_out_of_the_error_too(
    server: Server, emulator: EmulatorServer, store: EmulatorStore
) -> None:
    """When the signed hop fails, the error naming its URL carries no query nor fragment."""
    argv = ["sync", "--output", "json", "--source-url", f"{server.url}/signed-missing"]
    result = run_cli(*argv, env=cli_env(emulator, ALLOWLIST_SYNC_RETRY_ATTEMPTS="1"))
    assert result.code == 1
    error = result.json()["error"]
    assert error["kind"] == "feed" and "HTTP 404" in error["message"]
    assert "/blob/gone.json?<redacted>" in error["message"]
    for text in (result.stdout, result.stderr):
        assert "Zm9vYmFyU0VDUkVUc2lnbmF0dXJl" not in text and "2030-01-01" not in text
    assert store.requests == []


# ---------------------------------------------------------------- huge bodies


def test_huge_body_with_content_length_is_refused_unread(server: Server) -> None:
    """A declared 159 MiB body is refused by its Content-Length, its real size named, unread."""
    responses: list[httpx.Response] = []
    with (
        httpx.Client(event_hooks={"response": [responses.append]}) as client,
        pytest.raises(FeedError) as info,
    ):
        fetch(client, f"{server.url}/huge-declared", retry=RETRY, max_bytes=MAX_FEED_BYTES)
    assert str(info.value).endswith(
        "the body is 166723584 bytes (159.0 MiB), over the 64 MiB limit"
    )
    assert responses[0].num_bytes_downloaded == 0


def test_huge_body_without_content_length_is_cut_off(server: Server) -> None:
    """A streamed body is cut at the limit plus one chunk, and no size is claimed for it."""
    responses: list[httpx.Response] = []
    with (
        httpx.Client(event_hooks={"response": [responses.append]}) as client,
        pytest.raises(FeedError) as info,
    ):
        fetch(client, f"{server.url}/huge-streamed", retry=RETRY, max_bytes=MAX_FEED_BYTES)
    assert str(info.value).endswith("the body is over the 64 MiB limit")
    assert "bytes" not in str(info.value)
    read = responses[0].num_bytes_downloaded
    assert MAX_FEED_BYTES < read <= MAX_FEED_BYTES + CHUNK


def test_huge_source_file_names_its_real_size(tmp_path: Path, make_settings: Any) -> None:
    """A 159 MiB --source-file is refused by its size, unread, and the size is the real one."""
    path = tmp_path / "ServiceTags_Public_20251027.json"
    with path.open("wb") as handle:  # sparse: no disk is used
        handle.truncate(HUGE)
    with pytest.raises(FeedError) as info:
        load_feed(make_settings().feed_query(), source_file=str(path))
    assert str(info.value) == (
        f"{path}: the body is 166723584 bytes (159.0 MiB), over the 64 MiB limit"
    )


class Zeros:
    """A stdin that never ends, counting what was read from it."""

    def __init__(self) -> None:
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        assert size > 0, "stdin must be read with a bound"
        self.read_bytes += size
        return b" " * size


def test_huge_stdin_is_cut_off_without_a_size(make_settings: Any) -> None:
    """An endless stdin is read to the limit plus one byte and reported as over the limit."""
    stdin = Zeros()
    with pytest.raises(FeedError, match=r"^<stdin>: the body is over the 64 MiB limit$"):
        load_feed(make_settings().feed_query(), source_file="-", stdin=stdin)  # type: ignore[arg-type]
    assert stdin.read_bytes == MAX_FEED_BYTES + 1


@pytest.fixture
def make_settings(emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    """In-process settings against the emulator."""

    def make(**overrides: Any) -> Settings:
        return emulator_settings(emulator, monkeypatch, **overrides)

    return make


# ---------------------------------------------------------------- a tag listed twice


def test_tag_listed_twice_fails_the_run_before_the_target(
    tmp_path: Path, emulator: EmulatorServer, store: EmulatorStore
) -> None:
    """A file listing the tag twice exits 1 naming the problem; the dbt API is never called."""
    doc = json.loads(feed_body())
    entry = next(v for v in doc["values"] if v["name"] == "AzureActiveDirectory")
    extra = json.loads(json.dumps(entry))
    extra["properties"]["addressPrefixes"] = ["198.51.100.0/24"]
    doc["values"].append(extra)
    path = tmp_path / "ServiceTags_Public_20251027.json"
    path.write_text(json.dumps(doc, indent=2))
    result = run_cli("sync", "--output", "json", "--source-file", str(path), env=cli_env(emulator))
    assert result.code == 1
    error = result.json()["error"]
    assert error["kind"] == "feed"
    assert "service tag 'AzureActiveDirectory' is listed 2 times" in error["message"]
    assert store.requests == [] and store.write_count() == 0


# ---------------------------------------------------------------- rollback through discovery


def test_details_page_linking_an_older_file_does_not_roll_the_cache_back(
    tmp_path: Path, store: EmulatorStore, make_settings: Any
) -> None:
    """A page linking an older file (lower changeNumber): the cache keeps and applies the newer."""
    cache_dir = tmp_path / "cache"
    with DownloadCenter() as center:
        newer = feed_body(change_number=400)
        cached = FeedCache(cache_dir).store(
            cloud="Public",
            url=center.file_url(day(2)),
            file_date=day(2),
            body=newer,
            fetched_at=datetime.now(UTC) - timedelta(days=1),
        )
        assert cached is not None
        center.files = {day(5): feed_body(change_number=310, prefixes=["20.190.128.0/18"])}
        settings = make_settings(
            azure_details_url=center.details_url,
            azure_download_base=center.download_base,
            cache_dir=cache_dir,
        )
        with capture_logs() as logs:
            outcome = run_once(settings, RunOptions())
    out = outcome.to_json()
    assert out["status"] == "applied", out["error"]
    assert (out["source"]["kind"], out["source"]["changeNumber"]) == ("cache", 400)
    assert any("changeNumber 310" in w and "changeNumber 400" in w for w in out["warnings"])
    logged = [e for e in logs if e["event"] == "discovered_file_older_than_cache"]
    assert logged and logged[0]["log_level"] == "warning"
    entry = FeedCache(cache_dir).load("Public")
    assert entry is not None and entry.body == newer and entry.file_date == day(2)
    assert store.write_count() == 1  # the newer file's ranges were applied, not the older one's
    assert len(out["add"]) == len(set(tag_prefixes(newer)))
