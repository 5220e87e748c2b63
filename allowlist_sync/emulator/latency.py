"""WAN-like latency: every `/api/` request waits a round trip before it is processed.

A real dbt account is tens or hundreds of milliseconds away, and a run that syncs several
accounts should overlap those waits rather than add them up. `Latency` holds the delay and
counts the requests in flight (received, not yet answered), with the peak, so a test can pin
that N concurrent requests were served side by side instead of timing them. The wait happens
outside the store's lock and is cut short when the server stops (the request is dropped).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: The longest latency accepted: an hour, like the longest fault delay.
MAX_LATENCY = 3600.0


def check_latency(seconds: object) -> float:
    """`seconds` as a float when it is a finite number from 0 to an hour; ValueError otherwise."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ValueError(f"latency must be a number of seconds, not {type(seconds).__name__}")
    if not (math.isfinite(seconds) and 0 <= seconds <= MAX_LATENCY):
        raise ValueError(f"latency must be from 0 to {MAX_LATENCY:g} seconds, not {seconds!r}")
    return float(seconds)


class Latency:
    """The delay before every /api/ request, and the count of requests in flight."""

    def __init__(self, seconds: float, wake: threading.Event) -> None:
        self._seconds = check_latency(seconds)
        self._wake = wake  # set by the server on stop: every wait gives up at once
        self._count_lock = threading.Lock()
        self._in_flight = 0
        self._peak = 0

    @property
    def seconds(self) -> float:
        """The delay every /api/ request waits out before it is processed."""
        return self._seconds

    @seconds.setter
    def seconds(self, seconds: float) -> None:
        self._seconds = check_latency(seconds)

    @property
    def in_flight(self) -> int:
        """/api/ requests received and not yet answered."""
        with self._count_lock:
            return self._in_flight

    @property
    def peak(self) -> int:
        """The most /api/ requests that were in flight at once."""
        with self._count_lock:
            return self._peak

    @contextmanager
    def flying(self) -> Iterator[None]:
        """Count one request in flight for the duration of the block."""
        with self._count_lock:
            self._in_flight += 1
            self._peak = max(self._peak, self._in_flight)
        try:
            yield
        finally:
            with self._count_lock:
                self._in_flight -= 1

    def wait(self) -> bool:
        """Wait out the latency (never holding a lock); True if cut short by shutdown."""
        seconds = self._seconds
        return seconds > 0 and self._wake.wait(seconds)
