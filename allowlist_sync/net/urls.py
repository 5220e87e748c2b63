"""Which URLs this program may use: http(s) with a host, no credentials; https except on loopback.

One rule for every URL it is given or sent to (the dbt host, feed sources and redirect hops,
webhooks), with one exception: a Pushgateway may use plain http (in clusters it rarely has TLS),
so it is checked with `check_url_parts` alone.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from allowlist_sync.logs import display_url


def is_loopback_host(host: str | None) -> bool:
    """True for localhost and loopback addresses, the only hosts allowed plain http."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url_parts(url: str, *, show: bool = True) -> None:
    """Raise ValueError unless `url` is http(s) with a host, a valid port and no user-info.

    Messages show the URL only as `display_url` does (no credentials, no query), and not at
    all with `show=False` (a webhook URL is a secret as a whole).
    """
    if any(char.isspace() or ord(char) < 0x20 or ord(char) == 0x7F for char in url):
        # urlsplit would silently drop a tab or a line break; a URL never holds one.
        raise ValueError("must not contain whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError("is not a valid URL (check the host and the port, 1-65535)") from None
    shown = f"{display_url(url)!r} " if show else ""
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{shown}is not an http(s) URL")
    if "@" in parts.netloc:
        raise ValueError("must not carry user-info (user:password@); the token is its own setting")
    if port == 0:
        raise ValueError("has port 0; a port is 1-65535")


def check_http_url(url: str, *, show: bool = True) -> None:
    """Raise ValueError unless `url` is https, or plain http to a loopback host (see above)."""
    check_url_parts(url, show=show)
    if urlsplit(url).scheme == "http" and not is_loopback_host(urlsplit(url).hostname):
        raise ValueError("must use https (plain http is allowed only for loopback hosts)")
