"""The exception tree of allowlist-sync, and the one place that maps it to exit codes.

    AllowlistSyncError                 root: every error this program raises on purpose
    ├── ConfigError           (78)     bad configuration (env, files, flags that contradict)
    ├── FeedError             (1)      the service-tags source could not be read or is invalid
    ├── ApiError              (1)      the dbt Admin API answered with an error or not at all
    │   ├── AuthError            (77)  401: the token was refused
    │   ├── AccessDeniedError    (77)  403 account_access_denied: this caller's IP is blocked
    │   ├── ForbiddenError       (77)  403 otherwise: the token lacks the permission
    │   ├── NotFoundError              404: wrong account id, rule id or host
    │   ├── ConflictError              409: e.g. every submitted CIDR already exists
    │   ├── CidrsRejectedError         400 with failed_cidrs: the platform refused every CIDR
    │   ├── AmbiguousWriteError        a write may or may not have happened (timeout after send)
    │   └── ApiResponseError           the answer was not the shape the API documents
    ├── OwnershipError        (3)      the owned rule is ambiguous or is not an allow rule
    ├── UnsafePlanError       (3)      a guard refused the plan (carries the numbers)
    ├── VerifyError           (1)      after applying, the stored rule is not the desired set
    └── RunTimeoutError       (1)      past ALLOWLIST_SYNC_RUN_TIMEOUT: nothing more is sent

Messages are one line, name the problem, and never contain the service token: the token is
never formatted into a message, and `logs.redact` scrubs it once more before anything is printed.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """Process exit codes; the contract in README "Exit codes"."""

    OK = 0
    FAILED = 1
    CHANGES_PENDING = 2
    REFUSED = 3
    USAGE = 64
    #: The platform refused the token or its permission: retrying cannot help, a person must act.
    AUTH = 77
    CONFIG = 78
    #: Stopped by Ctrl-C (SIGINT), as shells report it.
    INTERRUPTED = 130


class AllowlistSyncError(Exception):
    """Root of every error allowlist-sync raises on purpose."""

    exit_code: ExitCode = ExitCode.FAILED
    #: Short machine-readable kind, used in logs and JSON output.
    kind: str = "error"


class ConfigError(AllowlistSyncError):
    exit_code = ExitCode.CONFIG
    kind = "config"


class FeedError(AllowlistSyncError):
    """The service-tags source could not be fetched, parsed or validated."""

    kind = "feed"

    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)


class ApiError(AllowlistSyncError):
    """The dbt Admin API failed; carries the HTTP status when there was one."""

    kind = "api"

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.method = method
        self.path = path
        where = f"{method} {path}: " if method and path else ""
        super().__init__(f"{where}{message}")


class AuthError(ApiError):
    exit_code = ExitCode.AUTH
    kind = "auth"


class AccessDeniedError(ApiError):
    """403 account_access_denied: IP restrictions block the address this job calls from."""

    exit_code = ExitCode.AUTH
    kind = "access_denied"


class ForbiddenError(ApiError):
    exit_code = ExitCode.AUTH
    kind = "permission"


class NotFoundError(ApiError):
    kind = "not_found"


class ConflictError(ApiError):
    kind = "conflict"


class CidrsRejectedError(ApiError):
    """A write saved nothing because the platform refused every submitted CIDR (400/409)."""

    kind = "cidrs_rejected"

    def __init__(
        self,
        message: str,
        *,
        failed_cidrs: list[str],
        already_exists: list[str],
        **kwargs: Any,
    ) -> None:
        self.failed_cidrs = failed_cidrs
        self.already_exists = already_exists
        super().__init__(message, **kwargs)


class AmbiguousWriteError(ApiError):
    """A write was sent but its result is unknown; the caller must re-read, never replay."""

    kind = "ambiguous_write"


class ApiResponseError(ApiError):
    kind = "bad_response"


class OwnershipError(AllowlistSyncError):
    """The rule this program owns cannot be identified safely."""

    exit_code = ExitCode.REFUSED
    kind = "ownership"


class UnsafePlanError(AllowlistSyncError):
    """A guard refused the plan; `guard` names which one, `details` carries the numbers."""

    exit_code = ExitCode.REFUSED
    kind = "refused"

    def __init__(self, message: str, *, guard: str, details: dict[str, object]) -> None:
        self.guard = guard
        self.details = details
        super().__init__(message)


class VerifyError(AllowlistSyncError):
    kind = "verify"


class RunTimeoutError(AllowlistSyncError):
    """The run passed its total deadline; no further request (and so no write) is sent."""

    kind = "run_timeout"


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit code for an exception that ended a run; unexpected ones are failures."""
    if isinstance(exc, AllowlistSyncError):
        return exc.exit_code
    return ExitCode.FAILED
