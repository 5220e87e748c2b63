"""Tiny hostile HTTP servers of the tests' own, on loopback: they drip, repeat and bloat answers.

Each is a raw socket server (not http.server) so it can misbehave below the HTTP layer: send one
byte a second, never finish, or answer every request with the same canned bytes.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: Builds the raw bytes of an answer from the raw request line (e.g. `GET /path HTTP/1.1`).
Responder = Callable[[str], bytes]


def http_response(
    body: bytes, *, status: str = "200 OK", content_type: str = "application/json"
) -> bytes:
    """A complete HTTP/1.1 answer with Content-Length."""
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


@contextmanager
def hostile_server(responder: Responder, *, drip_seconds: float = 0.0) -> Iterator[str]:
    """Serve `responder`'s bytes on a free loopback port; with `drip_seconds`, one byte at a time.

    Yields the base URL. Stops by itself when the block ends (connections are closed).
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    stop = threading.Event()
    requests: list[str] = []

    def handle(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                line = data.split(b"\r\n", 1)[0].decode("latin-1")
                requests.append(line)
                answer = responder(line)
                if drip_seconds <= 0:
                    conn.sendall(answer)
                    return
                for i in range(len(answer)):
                    if stop.is_set():
                        return
                    conn.sendall(answer[i : i + 1])
                    time.sleep(drip_seconds)
            except OSError:
                return

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=2)
        listener.close()
