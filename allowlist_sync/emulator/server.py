"""The emulator over HTTP: a ThreadingHTTPServer in a daemon thread, and the blocking CLI entry."""

from __future__ import annotations

import contextlib
import json
import shlex
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler
from importlib import resources
from types import TracebackType
from typing import Any, TextIO, cast
from urllib.parse import parse_qs, urlsplit

from allowlist_sync.emulator.account import DEFAULT_ACCOUNT_ID
from allowlist_sync.emulator.api import DEFAULT_MAX_PAGE_SIZE, DEFAULT_TOKEN
from allowlist_sync.emulator.envelope import Response, error_response
from allowlist_sync.emulator.seed import Seed
from allowlist_sync.emulator.store import EmulatorStore
from allowlist_sync.net.httpserver import LocalHTTPServer

MAX_BODY_BYTES = 1 << 20
_POLL_INTERVAL = 0.05  # how often serve_forever checks for shutdown: bounds stop() latency


class _HTTPServer(LocalHTTPServer):
    def __init__(self, address: tuple[str, int], store: EmulatorStore, log: TextIO | None) -> None:
        self.store = store
        self.log = log
        self._log_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, conn: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(conn)

    def untrack(self, conn: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(conn)

    def close_connections(self) -> None:
        """Shut every open connection, so idle keep-alive handlers exit and clients see EOF."""
        with self._connections_lock:
            conns = list(self._connections)
        for conn in conns:
            # OSError: already closed by the peer or by its handler.
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def write_log(self, line: str) -> None:
        if self.log is None:
            return
        with self._log_lock:
            print(line, file=self.log, flush=True)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that vanished (or our own shutdown) is routine for a fault-injecting
        # emulator; anything else gets one line, never a traceback with request data.
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            return
        self.write_log(f"emulator: internal error handling a request: {type(exc).__name__}")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API behind its load balancer
    server_version = "allowlist-sync-emulator"
    sys_version = ""
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle plus delayed
    # ACKs add ~40 ms to every response over loopback.
    disable_nagle_algorithm = True

    @property
    def _server(self) -> _HTTPServer:
        return cast(_HTTPServer, self.server)

    def setup(self) -> None:
        super().setup()
        self._server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._server.untrack(self.connection)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Silence the default access log; `_dispatch` writes its own line."""

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default logger (it would print the raw request line)."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer protocol-level errors (bad request line, unknown method) in the API envelope."""
        self._send(error_response(code, message or "Bad request.", explain or ""), "")
        self.close_connection = True

    def do_GET(self) -> None:
        """Dispatch GET."""
        self._dispatch()

    def do_POST(self) -> None:
        """Dispatch POST."""
        self._dispatch()

    def do_PUT(self) -> None:
        """Dispatch PUT."""
        self._dispatch()

    def do_DELETE(self) -> None:
        """Dispatch DELETE."""
        self._dispatch()

    def do_PATCH(self) -> None:
        """Dispatch PATCH (answered 405 by the store)."""
        self._dispatch()

    def do_HEAD(self) -> None:
        """Dispatch HEAD (answered 405 by the store)."""
        self._dispatch()

    def do_OPTIONS(self) -> None:
        """Dispatch OPTIONS (answered 405 by the store)."""
        self._dispatch()

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        raw_length = self.headers.get("Content-Length")
        if raw_length is None:
            return None
        if not raw_length.strip().isdigit():
            raise _ProtocolError(400, "Invalid Content-Length")
        length = int(raw_length)
        if length > MAX_BODY_BYTES:
            raise _ProtocolError(413, "Request body too large")
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            size_line = self.rfile.readline(1024).split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise _ProtocolError(400, "Invalid chunked encoding") from None
            if size == 0:
                # Skip trailers up to the blank line that ends the message.
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                raise _ProtocolError(413, "Request body too large")
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)  # the CRLF after each chunk

    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        path = split.path or "/"
        try:
            body = self._read_body()
        except _ProtocolError as exc:
            self._send(error_response(exc.code, exc.message, exc.message), path)
            self.close_connection = True
            return
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        headers = dict(self.headers.items())
        peer = str(self.client_address[0])
        response = self._server.store.handle(self.command, path, query, headers, body, peer)
        if response.drop:
            # Write nothing and close: the client sees EOF instead of a response.
            self.close_connection = True
            self._server.write_log(f"emulator: {self.command} {path} -> dropped")
            return
        self._send(response, path)

    def _send(self, response: Response, path: str) -> None:
        payload = b""
        if response.body is not None:
            payload = json.dumps(response.body).encode()
        try:
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            if response.status != 204:
                if response.body is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if payload and self.command != "HEAD" and response.status != 204:
                self.wfile.write(payload)
        except OSError:
            self.close_connection = True  # the client went away; nothing to answer
        if path:
            command = self.command or "-"
            self._server.write_log(f"emulator: {command} {path} -> {response.status}")


class _ProtocolError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class EmulatorServer:
    """The emulator listening on a loopback port, served from a daemon thread."""

    def __init__(
        self,
        store: EmulatorStore | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        quiet: bool = False,
        log: TextIO | None = None,
        strict: bool | None = None,
        latency: float | None = None,
    ) -> None:
        """Serve `store` (a fresh default one if None); `strict` and `latency` (seconds every
        /api/ request waits), when given, set its mode and delay."""
        self.store = store if store is not None else EmulatorStore()
        if strict is not None:
            self.store.strict = strict
        if latency is not None:
            self.store.latency = latency
        self._host = host
        self._port = port
        self._quiet = quiet
        self._log = log
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> EmulatorServer:
        """Bind and start serving in a daemon thread; returns self."""
        if self._httpd is not None:
            raise RuntimeError("the emulator is already running")
        log = None if self._quiet else (self._log or sys.stderr)
        self.store.clear_wake()
        httpd = _HTTPServer((self._host, self._port), self.store, log)
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL},
            name=f"allowlist-sync-emulator:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open connections and abort pending delays; idempotent."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._httpd = self._thread = None
        self.store.wake_sleepers()
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=1.0)

    @property
    def running(self) -> bool:
        """Whether the server is started and not yet stopped."""
        return self._httpd is not None

    @property
    def port(self) -> int:
        """The bound port (the real one when constructed with port 0)."""
        if self._httpd is None:
            raise RuntimeError("the emulator is not running")
        return self._httpd.server_port

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. `http://127.0.0.1:54321`."""
        return f"http://{_url_host(self._host)}:{self.port}"

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _url_host(host: str) -> str:
    # A wildcard bind is reachable on loopback; IPv6 literals need brackets in a URL.
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def bundled_snapshot() -> str | None:
    """The path of the newest Public service-tags snapshot shipped as package data, if any."""
    data = resources.files("allowlist_sync") / "data"
    names = sorted(
        entry.name
        for entry in data.iterdir()
        if entry.name.startswith("ServiceTags_Public_") and entry.name.endswith(".json")
    )
    return str(data / names[-1]) if names else None


def serve_forever(
    host: str = "127.0.0.1",
    port: int = 0,
    account_id: int = DEFAULT_ACCOUNT_ID,
    token: str = DEFAULT_TOKEN,
    max_page_size: int = DEFAULT_MAX_PAGE_SIZE,
    out: TextIO | None = None,
    *,
    seed: Seed | None = None,
    quiet: bool = False,
    stop: threading.Event | None = None,
) -> int:
    """Run the emulator holding `seed` until SIGINT/SIGTERM (or `stop` is set).

    The banner on `out` is shell a person can paste into another terminal: the three exports
    (of the first account), a comment naming every account when there are several, then (as
    comments and one command) the bundled snapshot's path and a dry run reading it. What each
    account holds goes to stderr. Returns the exit code: 0 after a clean stop, 1 when the
    address cannot be bound (one line on stderr, no traceback: a port in use is a user's
    everyday mistake).
    """
    # Resolved at call time (not as a default) so a redirected sys.stdout is honoured.
    out = out if out is not None else sys.stdout
    seed = seed if seed is not None else Seed()
    store = seed.make_store(account_id, token, max_page_size=max_page_size)
    server = EmulatorServer(store, host=host, port=port, quiet=quiet)
    try:
        server.start()
    except (OSError, OverflowError) as exc:  # in use, no such address, port out of range
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        print(f"emulator: cannot listen on {host} port {port}: {reason}", file=sys.stderr)
        return 1
    stop_event = stop if stop is not None else threading.Event()
    previous: dict[signal.Signals, Any] = {}
    # Signal handlers can only be installed from the main thread; elsewhere use `stop`.
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda _signum, _frame: stop_event.set())
    try:
        _print_banner(out, server.url, token, seed.accounts or ((store.account_id, None),))
        if not quiet:
            _print_status(server.url, store.accounts, seed)
        # A timed wait keeps the main thread responsive to signals on every platform.
        while not stop_event.wait(0.2):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not quiet:
        print("emulator: stopped", file=sys.stderr, flush=True)
    return 0


def _print_banner(
    out: TextIO, url: str, token: str, accounts: Sequence[tuple[int, str | None]]
) -> None:
    first, own = accounts[0]
    print(f"export DBT_CLOUD_HOST_URL={url}", file=out)
    print(f"export DBT_CLOUD_ACCOUNT_ID={first}", file=out)
    print(f"export DBT_CLOUD_TOKEN={shlex.quote(own or token)}", file=out)
    if len(accounts) > 1:
        # Own tokens are not repeated: the person who typed them has them.
        served = ", ".join(
            f"{ident}{' (its own token)' if ident_token else ''}"
            for ident, ident_token in accounts[1:]
        )
        print(f"# also served, same host: accounts {served}", file=out)
    snapshot = bundled_snapshot()
    if snapshot is not None:
        print(f"# the bundled service-tags snapshot (no internet needed): {snapshot}", file=out)
        print(f"allowlist-sync sync --dry-run --source-file {shlex.quote(snapshot)}", file=out)
    out.flush()


def _print_status(url: str, accounts: Sequence[int], seed: Seed) -> None:
    lines = [f"emulator: listening on {url} (state: {url}/_emulator/state); Ctrl-C to stop"]
    several = len(accounts) > 1
    for account in accounts:
        lines.append(f"emulator: account {account}: {seed.summary(account)}")
        warning = seed.lockout_warning(account)
        if warning is not None:
            where = f"account {account}: " if several else ""
            lines.append(f"emulator: warning: {where}{warning}")
    if seed.latency:
        lines.append(f"emulator: every /api/ request waits {seed.latency:g} s (--delay)")
    lines.append("emulator: paste the lines printed above into another terminal to try it")
    print("\n".join(lines), file=sys.stderr, flush=True)
