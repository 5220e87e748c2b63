"""The feed fetcher (`azure/fetch.py`) over `httpx.MockTransport`: each hop, each limit, each retry.

`tests/hostile/test_feed_hostile.py` covers the same code over real sockets (a redirect loop,
plain http elsewhere, a password in a hop, huge bodies); this file covers the rest, at the edges.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator

import httpx
import pytest

from allowlist_sync.azure.fetch import MAX_REDIRECTS, UnavailableError, fetch
from allowlist_sync.errors import FeedError
from allowlist_sync.net.retries import RetryPolicy

FEED = "https://feed.example/ServiceTags_Public.json"
BODY = b'{"changeNumber": 1, "values": []}'
#: Instant retries: waits are recorded by the `slept` fixture, never slept.
POLICY = RetryPolicy(attempts=3, backoff=0, max_seconds=60)

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport handler answering through `route` and recording every URL asked for."""

    def __init__(self, route: Handler) -> None:
        self.route = route
        self.urls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(str(request.url))
        return self.route(request)


def get(
    route: Handler,
    url: str = FEED,
    *,
    max_bytes: int = 1024,
    policy: RetryPolicy = POLICY,
    accept: frozenset[int] = frozenset({200}),
) -> tuple[Recorder, bytes]:
    """Fetch `url` through `route`; the recorder and the body."""
    recorder = Recorder(route)
    with httpx.Client(transport=httpx.MockTransport(recorder)) as client:
        fetched = fetch(client, url, retry=policy, max_bytes=max_bytes, accept_statuses=accept)
    return recorder, fetched.body


def fails(
    route: Handler, url: str = FEED, *, max_bytes: int = 1024, policy: RetryPolicy = POLICY
) -> tuple[Recorder, FeedError]:
    """Fetch `url` through `route` expecting a FeedError; the recorder and the error."""
    recorder = Recorder(route)
    with (
        httpx.Client(transport=httpx.MockTransport(recorder)) as client,
        pytest.raises(FeedError) as info,
    ):
        fetch(client, url, retry=policy, max_bytes=max_bytes)
    return recorder, info.value


def redirect(location: str, status: int = 302) -> httpx.Response:
    """A redirect answer to `location`."""
    return httpx.Response(status, headers={"Location": location})


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits tenacity asked for, in order; nothing actually sleeps."""
    waits: list[float] = []
    monkeypatch.setattr("tenacity.nap.time", types.SimpleNamespace(sleep=waits.append))
    return waits


# --- redirects, hop by hop ---


def test_https_redirect_is_followed_to_the_body() -> None:
    """A redirect to another https host is followed and the body comes from the final hop."""

    def route(request: httpx.Request) -> httpx.Response:
        if request.url.host == "feed.example":
            return redirect("https://mirror.example/file.json")
        return httpx.Response(200, content=BODY)

    recorder, body = get(route)
    assert body == BODY
    assert recorder.urls == [FEED, "https://mirror.example/file.json"]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_every_redirect_status_is_followed(status: int) -> None:
    """Each redirect status with a Location is followed by hand, not returned as the body."""

    def route(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/ServiceTags_Public.json":
            return redirect("/moved.json", status)
        return httpx.Response(200, content=BODY)

    assert get(route)[1] == BODY


def test_relative_location_is_resolved_against_the_hop() -> None:
    """A relative Location (`../x`) is resolved against the URL that sent it."""

    def route(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/a/b/start.json":
            return redirect("../c/next.json")
        return httpx.Response(200, content=BODY)

    recorder, _ = get(route, "https://feed.example/a/b/start.json")
    assert recorder.urls[1] == "https://feed.example/a/c/next.json"


def test_scheme_relative_location_keeps_https() -> None:
    """A `//host/path` Location inherits the https scheme of the hop that sent it."""

    def route(request: httpx.Request) -> httpx.Response:
        if request.url.host == "feed.example":
            return redirect("//mirror.example/x.json")
        return httpx.Response(200, content=BODY)

    recorder, _ = get(route)
    assert recorder.urls[1] == "https://mirror.example/x.json"


def test_plain_http_redirect_to_loopback_is_followed() -> None:
    """A hop to plain http on a loopback host (a local mirror) is allowed."""

    def route(request: httpx.Request) -> httpx.Response:
        if request.url.host == "feed.example":
            return redirect("http://127.0.0.1:8080/feed.json")
        return httpx.Response(200, content=BODY)

    recorder, body = get(route)
    assert body == BODY
    assert recorder.urls[1] == "http://127.0.0.1:8080/feed.json"


def test_https_to_plain_http_on_the_same_host_is_refused_unfetched() -> None:
    """A downgrade from https to http on the same public host is refused before it is sent."""
    recorder, error = fails(lambda _: redirect("http://feed.example/ServiceTags_Public.json"))
    assert not isinstance(error, UnavailableError)
    assert "https" in str(error)
    assert recorder.urls == [FEED]


@pytest.mark.parametrize(
    "location", ["ftp://feed.example/x.json", "file:///etc/passwd", "javascript:alert(1)"]
)
def test_redirect_to_another_scheme_is_refused_unfetched(location: str) -> None:
    """A hop to ftp, file or any non-http scheme is a FeedError and is never requested."""
    recorder, error = fails(lambda _: redirect(location))
    assert not isinstance(error, UnavailableError)
    assert recorder.urls == [FEED]


def test_user_info_without_password_in_a_hop_is_refused() -> None:
    """A hop naming a user (no password) is refused too: httpx would send it as Basic auth."""
    recorder, error = fails(lambda _: redirect("https://someone@mirror.example/x.json"))
    assert not isinstance(error, UnavailableError)
    assert recorder.urls == [FEED]


def test_starting_url_is_checked_before_any_request() -> None:
    """The first URL obeys the same rule as every hop: plain http elsewhere is never sent."""
    recorder, error = fails(lambda _: httpx.Response(200, content=BODY), "http://feed.example/x")
    assert not isinstance(error, UnavailableError)
    assert recorder.urls == []


def test_exactly_max_redirects_hops_still_reach_the_body() -> None:
    """A chain of MAX_REDIRECTS redirects is followed to the body on the last hop."""

    def route(request: httpx.Request) -> httpx.Response:
        hop = int(request.url.params.get("hop", "0"))
        if hop < MAX_REDIRECTS:
            return redirect(f"{FEED}?hop={hop + 1}")
        return httpx.Response(200, content=BODY)

    recorder, body = get(route)
    assert body == BODY
    assert len(recorder.urls) == MAX_REDIRECTS + 1


def test_one_redirect_more_than_max_is_unavailable_and_not_retried(slept: list[float]) -> None:
    """MAX_REDIRECTS + 1 hops: UnavailableError naming the limit, after one pass only."""

    def route(request: httpx.Request) -> httpx.Response:
        hop = int(request.url.params.get("hop", "0"))
        if hop <= MAX_REDIRECTS:
            return redirect(f"{FEED}?hop={hop + 1}")
        return httpx.Response(200, content=BODY)

    recorder, error = fails(route)
    assert isinstance(error, UnavailableError)
    assert f"more than {MAX_REDIRECTS} redirects" in str(error)
    assert len(recorder.urls) == MAX_REDIRECTS + 1
    assert slept == []


def test_redirect_without_location_is_an_unavailable_status() -> None:
    """A 302 with no Location is not a body to parse: UnavailableError with its status."""
    _, error = fails(lambda _: httpx.Response(302))
    assert isinstance(error, UnavailableError)
    assert error.status_code == 302


# --- the size cap ---


def test_body_of_exactly_the_limit_is_accepted() -> None:
    """A body of exactly max_bytes (declared or streamed) is read whole."""
    body = b"x" * 100
    assert get(lambda _: httpx.Response(200, content=body), max_bytes=100)[1] == body
    assert get(lambda _: httpx.Response(200, content=iter([body])), max_bytes=100)[1] == body


def test_declared_length_one_over_the_limit_is_refused_with_its_size() -> None:
    """A Content-Length of max_bytes + 1 is a FeedError naming that size, not an outage."""
    _, error = fails(lambda _: httpx.Response(200, content=b"x" * 101), max_bytes=100)
    assert not isinstance(error, UnavailableError)
    assert "101 bytes" in str(error)


def test_streamed_body_one_over_the_limit_is_refused_without_a_size() -> None:
    """A chunked body (no Content-Length) one byte over is cut off, and no size is claimed."""
    chunks = iter([b"x" * 60, b"x" * 41])
    _, error = fails(lambda _: httpx.Response(200, content=chunks), max_bytes=100)
    assert not isinstance(error, UnavailableError)
    assert "over the 100-byte limit" in str(error)
    assert "bytes (" not in str(error)


def test_streaming_stops_at_the_chunk_that_crosses_the_limit() -> None:
    """An endless chunked body is read only up to the first chunk past the limit."""
    produced: list[int] = []

    def endless() -> Iterator[bytes]:
        while True:
            produced.append(1)
            yield b"x" * 10

    _, error = fails(lambda _: httpx.Response(200, content=endless()), max_bytes=100)
    assert "limit" in str(error)
    assert len(produced) == 11


def test_content_length_that_understates_the_body_does_not_lift_the_cap() -> None:
    """A small Content-Length on a larger streamed body is still cut at the limit."""

    def route(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Length": "10"}, content=iter([b"x" * 500]))

    _, error = fails(route, max_bytes=100)
    assert "limit" in str(error)


@pytest.mark.parametrize("declared", ["-1", "abc", "1e9", " "])
def test_malformed_content_length_falls_back_to_the_streamed_cap(declared: str) -> None:
    """A Content-Length that is not a number is ignored and the streamed size still decides."""

    def route(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Length": declared}, content=iter([b"x" * 500]))

    _, error = fails(route, max_bytes=100)
    assert "over the 100-byte limit" in str(error)


# --- retries, timeouts, and which error ---


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 429])
def test_retryable_status_then_success_returns_the_body(status: int, slept: list[float]) -> None:
    """A 5xx, 408 or 429 is retried and a later 200 is used."""
    answers = [httpx.Response(status), httpx.Response(200, content=BODY)]
    recorder, body = get(lambda _: answers.pop(0))
    assert body == BODY
    assert len(recorder.urls) == 2


def test_persistent_5xx_gives_up_after_the_attempts_as_unavailable(slept: list[float]) -> None:
    """A server failing every attempt gives UnavailableError with the last status, after N tries."""
    recorder, error = fails(lambda _: httpx.Response(503))
    assert isinstance(error, UnavailableError)
    assert error.status_code == 503
    assert "gave up after retries" in str(error)
    assert len(recorder.urls) == POLICY.attempts


def test_retry_after_seconds_is_the_wait(slept: list[float]) -> None:
    """A 429 with `Retry-After: 7` waits 7 seconds, not the backoff."""
    answers = [httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(200, content=BODY)]
    get(lambda _: answers.pop(0))
    assert slept == [7.0]


def test_retry_after_http_date_in_the_past_waits_nothing(slept: list[float]) -> None:
    """A Retry-After date already past means no wait at all."""
    answers = [
        httpx.Response(503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
        httpx.Response(200, content=BODY),
    ]
    get(lambda _: answers.pop(0))
    assert slept == [0.0]


def test_huge_retry_after_is_capped_by_the_policy(slept: list[float]) -> None:
    """A Retry-After of a day waits no more than `max_retry_after`."""
    policy = RetryPolicy(attempts=2, backoff=0, max_seconds=10**6, max_retry_after=30)
    answers = [
        httpx.Response(503, headers={"Retry-After": "86400"}),
        httpx.Response(200, content=BODY),
    ]
    get(lambda _: answers.pop(0), policy=policy)
    assert slept == [30.0]


def test_garbage_retry_after_falls_back_to_backoff(slept: list[float]) -> None:
    """An unparseable Retry-After is ignored and the (here zero) backoff is used."""
    answers = [
        httpx.Response(503, headers={"Retry-After": "soon"}),
        httpx.Response(200, content=BODY),
    ]
    get(lambda _: answers.pop(0))
    assert slept == [0.0]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
def test_other_error_status_is_unavailable_at_once(status: int, slept: list[float]) -> None:
    """A 4xx that is not 408/429 is UnavailableError with its status, asked for once."""
    recorder, error = fails(lambda _: httpx.Response(status))
    assert isinstance(error, UnavailableError)
    assert error.status_code == status
    assert len(recorder.urls) == 1
    assert slept == []


def test_accepted_statuses_beyond_200_return_the_body() -> None:
    """A caller accepting 404 (a probe) gets the 404's body instead of an error."""
    _, body = get(lambda _: httpx.Response(404, content=b"nope"), accept=frozenset({200, 404}))
    assert body == b"nope"


def test_timeout_is_retried_then_unavailable(slept: list[float]) -> None:
    """A read timeout on every attempt becomes UnavailableError saying it timed out."""

    def route(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    recorder, error = fails(route)
    assert isinstance(error, UnavailableError)
    assert error.status_code is None
    assert "timed out" in str(error)
    assert len(recorder.urls) == POLICY.attempts


def test_timeout_then_success_returns_the_body(slept: list[float]) -> None:
    """One connect timeout, then an answer: the body is used."""
    calls: list[int] = []

    def route(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            raise httpx.ConnectTimeout("slow", request=request)
        return httpx.Response(200, content=BODY)

    assert get(route)[1] == BODY


def test_connection_refused_is_unavailable_naming_the_error(slept: list[float]) -> None:
    """A transport error on every attempt is UnavailableError naming its type, one line."""

    def route(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused\nsecond line", request=request)

    _, error = fails(route)
    assert isinstance(error, UnavailableError)
    assert "ConnectError: refused" in str(error)
    assert "\n" not in str(error)


def test_a_refused_redirect_is_never_retried(slept: list[float]) -> None:
    """An unsafe hop stops at once: it is about what was received, not an outage."""
    recorder, error = fails(lambda _: redirect("http://mirror.example/x"))
    assert not isinstance(error, UnavailableError)
    assert recorder.urls == [FEED]
    assert slept == []


def test_a_body_over_the_limit_is_never_retried(slept: list[float]) -> None:
    """A body over the limit is a FeedError at once, not retried as if transient."""
    recorder, error = fails(lambda _: httpx.Response(200, content=b"x" * 2000))
    assert not isinstance(error, UnavailableError)
    assert len(recorder.urls) == 1
