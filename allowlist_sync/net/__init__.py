"""Networking shared by the feed and the dbt client: deadlines for requests and for a whole run."""

from allowlist_sync.net.deadline import (
    check_run_deadline,
    http_client,
    run_deadline,
    run_remaining,
)

__all__ = ["check_run_deadline", "http_client", "run_deadline", "run_remaining"]
