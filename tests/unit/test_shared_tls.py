"""Every HTTP client of a run shares one TLS context: the CA bundle is loaded once per process."""

from __future__ import annotations

import ssl

import httpx
import pytest

from allowlist_sync.net import deadline


def test_clients_share_one_tls_context(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three clients (a fleet's targets and sources) build httpx's default context once."""
    built: list[ssl.SSLContext] = []
    real = httpx.create_ssl_context

    def counting(*args: object, **kwargs: object) -> ssl.SSLContext:
        context = real()
        built.append(context)
        return context

    monkeypatch.setattr(deadline, "_ssl_context", None)
    monkeypatch.setattr(httpx, "create_ssl_context", counting)
    for _ in range(3):
        deadline.http_client(timeout=5).close()
    assert len(built) == 1
    assert deadline.shared_ssl_context() is built[0]


def test_a_client_given_its_own_verify_keeps_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """An explicit `verify` is passed through untouched (the shared context is only a default)."""
    monkeypatch.setattr(deadline, "_ssl_context", None)
    deadline.http_client(timeout=5, verify=False).close()
    assert deadline._ssl_context is None
