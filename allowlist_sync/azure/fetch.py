"""Download a service-tags file over HTTP: timeouts, bounded retries, a size limit, safe redirects.

Redirects are followed by hand so each hop can be checked: only to https, or to a loopback host
(test servers and local mirrors). A hop's query string and fragment (a signed storage URL's
`?sv=..&sig=..`) become secrets before anything can log or raise with that URL. A body over the
size limit is refused by its Content-Length, or cut off while streaming, never held whole.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from urllib.parse import urljoin

import httpx

from allowlist_sync._version import __version__
from allowlist_sync.azure.feed import too_large
from allowlist_sync.errors import FeedError
from allowlist_sync.logs import display_url, register_url
from allowlist_sync.net.retries import (
    RETRYABLE_STATUSES,
    RetryPolicy,
    Transient,
    parse_retry_after,
    retrying,
)
from allowlist_sync.net.urls import check_http_url

MAX_REDIRECTS = 5
# download.microsoft.com and its details pages block clients that do not look like a browser.
BROWSER_HEADERS = {
    "User-Agent": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        f"Chrome/124.0 Safari/537.36 allowlist-sync/{__version__}"
    ),
    "Accept": "text/html,application/xhtml+xml,application/json;q=0.9,*/*;q=0.8",
    "Accept-Language": "en-US,en;q=0.9",
}


class UnavailableError(FeedError):
    """The URL gave no body to use: an HTTP error status, or no answer even after retries.

    Discovery moves on to its next step on this error; any other FeedError is about what was
    received (too large, an unsafe redirect) and stops the run.
    """

    def __init__(
        self, message: str, *, source: str | None = None, status_code: int | None = None
    ) -> None:
        self.status_code = status_code
        super().__init__(message, source=source)


@dataclass(frozen=True)
class Fetched:
    """A downloaded body and where it finally came from."""

    url: str
    status_code: int
    body: bytes
    headers: httpx.Headers


def register_url_secrets(url: str) -> None:
    """Make the query, fragment and user-info of `url` secrets: signed URLs carry keys there."""
    register_url(url)
    # httpx may show the same query re-encoded in its own messages.
    with contextlib.suppress(httpx.InvalidURL):
        register_url(str(httpx.URL(url)))


def check_url_allowed(url: str) -> None:
    """Raise FeedError unless `url` is https (or http to a loopback host) with no user-info."""
    try:
        check_http_url(url, show=False)
    except ValueError as exc:
        raise FeedError(f"refusing the URL: it {exc}", source=display_url(url)) from None


def fetch(
    client: httpx.Client,
    url: str,
    *,
    retry: RetryPolicy,
    max_bytes: int,
    headers: dict[str, str] | None = None,
    accept_statuses: frozenset[int] = frozenset({200}),
) -> Fetched:
    """GET `url` with retries on transient failures; raises FeedError on anything else."""
    register_url_secrets(url)
    check_url_allowed(url)
    try:
        for attempt in retrying(retry, f"GET {url}"):
            with attempt:
                return _get_following(
                    client,
                    url,
                    max_bytes=max_bytes,
                    headers=headers or {},
                    accept_statuses=accept_statuses,
                )
    except Transient as exc:
        raise UnavailableError(
            f"{exc.reason} (gave up after retries)", source=url, status_code=exc.status_code
        ) from None
    raise AssertionError("unreachable")  # pragma: no cover - tenacity always returns or raises


def _get_following(
    client: httpx.Client,
    url: str,
    *,
    max_bytes: int,
    headers: dict[str, str],
    accept_statuses: frozenset[int],
) -> Fetched:
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        try:
            with client.stream("GET", current, headers={**BROWSER_HEADERS, **headers}) as resp:
                if resp.is_redirect and "location" in resp.headers:
                    current = urljoin(current, resp.headers["location"])
                    register_url_secrets(current)
                    check_url_allowed(current)
                    continue
                if resp.status_code in RETRYABLE_STATUSES:
                    raise Transient(
                        f"HTTP {resp.status_code}",
                        status_code=resp.status_code,
                        retry_after=parse_retry_after(resp.headers.get("retry-after")),
                    )
                if resp.status_code not in accept_statuses:
                    raise UnavailableError(
                        f"HTTP {resp.status_code}", source=current, status_code=resp.status_code
                    )
                body = _read_limited(resp, max_bytes, current)
                return Fetched(
                    url=current, status_code=resp.status_code, body=body, headers=resp.headers
                )
        except httpx.InvalidURL as exc:  # a Location httpx cannot even send a request to
            raise FeedError(f"refusing an invalid URL ({exc})", source=url) from None
        except httpx.TimeoutException:
            raise Transient("timed out") from None
        except httpx.TransportError as exc:
            raise Transient(
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            ) from None
    raise UnavailableError(f"more than {MAX_REDIRECTS} redirects", source=url)


def _read_limited(resp: httpx.Response, max_bytes: int, url: str) -> bytes:
    declared = resp.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > max_bytes:
        raise FeedError(too_large(max_bytes, size=int(declared)), source=url)
    chunks: list[bytes] = []
    size = 0
    for chunk in resp.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            # Only what was read so far is known, not the size: say no more than that.
            raise FeedError(too_large(max_bytes), source=url)
        chunks.append(chunk)
    return b"".join(chunks)
