"""The threaded HTTP server behind the emulator and the serve-mode health endpoint."""

from __future__ import annotations

import socket
import socketserver
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LocalHTTPServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer that binds IPv4 or IPv6 and never waits on its handler threads.

    Daemon handler threads and no join on close: stopping must not wait for a request that is
    still being answered (or sleeping in an injected delay).
    """

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup that can take
        # seconds on hosts without a resolver; neither server needs the name.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)
