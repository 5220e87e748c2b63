"""How to reach one dbt account: plain values, so a client can be built for any account."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import SecretStr

from allowlist_sync.net.retries import RetryPolicy

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Connection:
    """The account's API host, id and service token, and how hard to try.

    `token_source` says where the token came from (`DBT_CLOUD_TOKEN`, a file path), for messages
    that must tell a person what to fix without showing the token.
    """

    host_url: str
    account_id: int
    token: SecretStr = field(repr=False)
    token_source: str = "DBT_CLOUD_TOKEN"  # noqa: S105 - a variable name, not a token
    timeout: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
