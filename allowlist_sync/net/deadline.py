"""Deadlines that a slow server cannot stretch: one per request, one per run.

httpx's timeouts bound each socket operation, not a request: a server that drips its answer one
byte a second never trips a 30-second read timeout and keeps a run alive forever. Here every
socket operation of a client built by `http_client` gets, as its timeout, what is left of

- the request's total deadline (`timeout` seconds from the moment the request is sent: connect,
  send, headers and every read of the body), and
- the run's deadline (`run_deadline(seconds)` around a run; `ALLOWLIST_SYNC_RUN_TIMEOUT`).

A request started after the run's deadline raises `RunTimeoutError` before anything is sent, so a
run that is out of time writes nothing further. The per-request deadline lives in a thread-local
set by an httpx request hook; the socket side is a thin wrapper around httpcore's network backend.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import httpcore
import httpx

from allowlist_sync.errors import RunTimeoutError

_run_deadline: ContextVar[tuple[float, float] | None] = ContextVar("run_deadline", default=None)
_request = threading.local()


@contextmanager
def run_deadline(seconds: float) -> Iterator[None]:
    """Within this block, no request outlives `seconds` from now, and none starts after it."""
    token = _run_deadline.set((time.monotonic() + seconds, seconds))
    try:
        yield
    finally:
        _run_deadline.reset(token)


def run_remaining() -> float | None:
    """Seconds left of the current run's deadline (None outside a run)."""
    current = _run_deadline.get()
    return None if current is None else current[0] - time.monotonic()


def check_run_deadline() -> None:
    """Raise RunTimeoutError when the current run is past its deadline."""
    current = _run_deadline.get()
    if current is not None and time.monotonic() >= current[0]:
        raise RunTimeoutError(
            f"the run passed its deadline (ALLOWLIST_SYNC_RUN_TIMEOUT={current[1]:g}s); "
            "nothing further was sent, the next run starts over"
        )


_ssl_lock = threading.Lock()
_ssl_context: ssl.SSLContext | None = None


def shared_ssl_context() -> ssl.SSLContext:
    """httpx's default TLS context (certifi, or SSL_CERT_FILE / SSL_CERT_DIR), built once.

    Loading the CA bundle costs each new client about 80 ms of CPU and its memory; a run over
    several targets builds a client per target and per source, so they share one context (an
    SSLContext is safe to use from several threads).
    """
    global _ssl_context
    with _ssl_lock:
        if _ssl_context is None:
            _ssl_context = httpx.create_ssl_context()
        return _ssl_context


def http_client(
    *, timeout: float, transport: httpx.BaseTransport | None = None, **kwargs: Any
) -> httpx.Client:
    """An httpx.Client whose every request ends within `timeout` seconds and the run's deadline.

    With an injected `transport` (tests: MockTransport) the run deadline still applies to each
    request start; the socket-level deadline needs the real transport.
    """

    def start_request(_request_: httpx.Request) -> None:
        check_run_deadline()
        deadline = time.monotonic() + timeout
        remaining = run_remaining()
        if remaining is not None:
            deadline = min(deadline, time.monotonic() + remaining)
        _request.deadline = deadline

    hooks = kwargs.pop("event_hooks", {})
    hooks = {**hooks, "request": [*hooks.get("request", []), start_request]}
    if transport is None and "verify" not in kwargs:
        kwargs["verify"] = shared_ssl_context()
    client = httpx.Client(timeout=timeout, transport=transport, event_hooks=hooks, **kwargs)
    if transport is None:
        _install(client)
    return client


def _install(client: httpx.Client) -> None:
    """Put the deadline backend under every connection pool the client has (proxies included)."""
    transports = [client._transport, *client._mounts.values()]  # private: see the module doc
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if backend is None:
            if isinstance(transport, httpx.HTTPTransport):
                # An httpx/httpcore release moved these: fail loudly rather than run unbounded.
                raise RuntimeError("cannot install request deadlines on this httpx version")
            continue
        if not isinstance(backend, _DeadlineBackend):
            pool._network_backend = _DeadlineBackend(backend)  # type: ignore[union-attr]


def _bound(timeout: float | None, error: type[Exception]) -> float | None:
    deadline: float | None = getattr(_request, "deadline", None)
    if deadline is None:
        return timeout
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise error("the request passed its total deadline")
    return remaining if timeout is None else min(timeout, remaining)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bound(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bound(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bound(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bound(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(
            self._inner.connect_tcp(host, port, bounded, local_address, socket_options)
        )

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        bounded = _bound(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.connect_unix_socket(path, bounded, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)
