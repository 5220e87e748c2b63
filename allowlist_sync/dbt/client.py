"""A typed client for the dbt Admin API's IP-restriction endpoints, over httpx.

Reads are free; writes are narrow on purpose: the client can create the owned rule and change
the CIDRs and description of the owned rule, and nothing else. Its one delete takes back a rule
that this very client created in this run (a duplicate left by a concurrent run, see sync); it
refuses any other id. It refuses (before sending anything) to write a rule whose name is not the
owned name or that is not an allow rule.

Answers are bounded: a body over `max_body_bytes` is refused while it streams in, and a listing
that repeats ids, outgrows its own `total_count` or runs past `MAX_PAGES` is an error.

HTTP-library errors and the API's error envelope are mapped here to `ApiError` subclasses.
Reads are retried on transient failures; a write is retried only when it certainly did not
reach the server (connect errors, 408, 429). Any other failure of a write is an
`AmbiguousWriteError`: the caller re-reads and re-plans instead of replaying it.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Any, Self

import httpx
from pydantic import SecretStr

from allowlist_sync._version import __version__
from allowlist_sync.dbt.answers import (
    dig,
    error_for,
    json_body,
    parse,
    raise_if_cidrs_rejected,
    reason,
    user_message,
    write_result,
)
from allowlist_sync.dbt.connection import DEFAULT_MAX_BODY_BYTES, Connection
from allowlist_sync.dbt.models import Cidr, Pagination, Rule, RuleType, State, WriteResult
from allowlist_sync.errors import (
    AmbiguousWriteError,
    ApiError,
    ApiResponseError,
    OwnershipError,
)
from allowlist_sync.logs import get_logger, register_secret
from allowlist_sync.net.deadline import http_client
from allowlist_sync.net.retries import (
    RETRYABLE_STATUSES,
    RetryPolicy,
    Transient,
    parse_retry_after,
    retrying,
)

log = get_logger(__name__)


PAGE_SIZE = 100  # the API's maximum `limit`
#: 10,000 rules: far above any real account; a listing that goes on is a broken server.
MAX_PAGES = 100
#: Statuses that prove a write was not processed, so sending it again is safe.
_WRITE_SAFE_RETRY = frozenset({408, 429})


class DbtClient:
    """The dbt Admin API, as far as one owned IP-restriction rule needs it."""

    def __init__(
        self,
        *,
        host_url: str,
        account_id: int,
        token: SecretStr,
        owned_rule_name: str,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        token_source: str = "DBT_CLOUD_TOKEN",  # noqa: S107 - a variable name
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        register_secret(token.get_secret_value())
        self.account_id = account_id
        self.owned_rule_name = owned_rule_name
        self.retry = retry or RetryPolicy()
        self.token_source = token_source
        self.max_body_bytes = max_body_bytes
        self.request_count = 0
        self.write_count = 0
        self.bytes_received = 0
        #: Ids of rules this client created: the only ones `delete_created_rule` may delete.
        self.created_rule_ids: set[int] = set()
        self._http = http_client(
            base_url=f"{host_url}/api/v3/accounts/{account_id}/",
            headers={
                "Authorization": f"Token {token.get_secret_value()}",
                "Accept": "application/json",
                "User-Agent": f"allowlist-sync/{__version__}",
            },
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
        )

    @classmethod
    def connect(
        cls,
        connection: Connection,
        *,
        owned_rule_name: str,
        transport: httpx.BaseTransport | None = None,
    ) -> DbtClient:
        """The client for one account's connection and owned rule."""
        return cls(
            host_url=connection.host_url,
            account_id=connection.account_id,
            token=connection.token,
            owned_rule_name=owned_rule_name,
            timeout=connection.timeout,
            retry=connection.retry,
            transport=transport,
            token_source=connection.token_source,
            max_body_bytes=connection.max_body_bytes,
        )

    def __repr__(self) -> str:
        return f"DbtClient(base_url={str(self._http.base_url)!r}, token='**********')"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ----------------------------------------------------------------- reads

    def list_rules(self) -> list[Rule]:
        """Every rule of the account, across as many pages as `total_count` says there are.

        The same rule twice on one page is kept once; a page that repeats ids of an earlier page,
        more entries than `total_count`, or more than MAX_PAGES pages is an ApiResponseError.
        """
        rules: dict[int, Rule] = {}
        received = 0
        where: dict[str, Any] = {"method": "GET", "path": "ip-restrictions/"}
        bytes_before = self.bytes_received
        for page in range(MAX_PAGES):
            body = self._request(
                "GET", "ip-restrictions/", params={"limit": PAGE_SIZE, "offset": received}
            )
            if self.bytes_received - bytes_before > self.max_body_bytes:
                # Pages are bounded one by one; the whole listing is held in memory at once.
                raise ApiResponseError(
                    f"the listing is over the {self.max_body_bytes}-byte limit in total "
                    "(ALLOWLIST_SYNC_API_MAX_BODY_BYTES)",
                    **where,
                )
            data = body.get("data")
            if not isinstance(data, list):
                raise ApiResponseError("list response has no 'data' list", **where)
            pagination = parse(
                Pagination, dig(body, "extra", "pagination"), "GET ip-restrictions/ pagination"
            )
            page_rules = [parse(Rule, item, "GET ip-restrictions/ rule") for item in data]
            repeated = sorted({r.id for r in page_rules} & rules.keys())
            if repeated:
                raise ApiResponseError(
                    f"page {page + 1} (offset {received}) repeats rule ids already listed "
                    f"({', '.join(map(str, repeated[:5]))}); the API's paging is broken",
                    **where,
                )
            received += len(data)
            if received > pagination.total_count:
                raise ApiResponseError(
                    f"the listing gave {received} entries, more than its total_count "
                    f"{pagination.total_count}",
                    **where,
                )
            for rule in page_rules:
                rules.setdefault(rule.id, rule)
            if not data or received >= pagination.total_count:
                log.debug("rules_listed", pages=page + 1, rules=len(rules))
                return list(rules.values())
        raise ApiResponseError(f"more than {MAX_PAGES} pages of rules", **where)

    def get_rule(self, rule_id: int) -> Rule:
        """One rule by id."""
        body = self._request("GET", f"ip-restrictions/{rule_id}")
        return parse(Rule, body.get("data"), f"GET ip-restrictions/{rule_id}")

    def caller_allowed(self, rule_set_id: int, *, without_rule_id: int | None = None) -> bool:
        """Whether the platform would let this caller in (optionally with one rule ignored)."""
        path = f"ip-restrictions-set/{rule_set_id}/validate/"
        if without_rule_id is not None:
            path += str(without_rule_id)
        body = self._request("GET", path)
        data = body.get("data") if isinstance(body.get("data"), dict) else body
        valid = data.get("is_valid_for_admin") if isinstance(data, dict) else None
        if not isinstance(valid, bool):
            raise ApiResponseError(
                "validate response has no 'is_valid_for_admin' boolean", method="GET", path=path
            )
        return valid

    # ---------------------------------------------------------------- writes

    def create_owned_rule(
        self, *, cidrs: Iterable[str], description: str, rule_set_enabled: bool
    ) -> WriteResult:
        """Create the owned allow rule holding `cidrs`, keeping enforcement as it is."""
        payload = {
            "name": self.owned_rule_name,
            "type": int(RuleType.ALLOW),
            "rule_set_enabled": rule_set_enabled,
            "account_id": self.account_id,
            "description": description,
            "cidrs": [{"cidr": c, "state": int(State.ACTIVE)} for c in cidrs],
        }
        body = self._request("POST", "ip-restrictions/", json=payload)
        result = write_result(body, "POST ip-restrictions/")
        self.created_rule_ids.add(result.rule.id)
        return result

    def delete_created_rule(self, rule_id: int) -> None:
        """Delete a rule this client created in this run, and no other: refused before sending."""
        if rule_id not in self.created_rule_ids:
            raise OwnershipError(
                f"refusing to delete rule {rule_id}: this client deletes only a rule it created"
            )
        self._request("DELETE", f"ip-restrictions/{rule_id}")
        self.created_rule_ids.discard(rule_id)

    def update_owned_rule(
        self,
        rule: Rule,
        *,
        add: Iterable[str],
        remove: Iterable[Cidr],
        description: str | None = None,
    ) -> WriteResult:
        """One PUT: `add` appended (no id), `remove` deleted by id (state 2), and `description`
        when given (else the rule's own); nothing else."""
        self._check_owned(rule)
        cidrs: list[dict[str, Any]] = [{"cidr": c, "state": int(State.ACTIVE)} for c in add]
        cidrs += [{"id": c.id, "cidr": c.cidr, "state": int(State.DELETED)} for c in remove]
        payload: dict[str, Any] = {
            "id": rule.id,
            "name": rule.name,
            "type": rule.type,
            "rule_set_enabled": rule.rule_set_enabled,
            "account_id": self.account_id,
            "cidrs": cidrs,
        }
        description = description if description is not None else rule.description
        if description:
            payload["description"] = description
        path = f"ip-restrictions/{rule.id}"
        body = self._request("PUT", path, json=payload)
        return write_result(body, f"PUT {path}")

    def _check_owned(self, rule: Rule) -> None:
        if rule.name != self.owned_rule_name:
            raise OwnershipError(
                f"refusing to write rule {rule.id} named {rule.name!r}: "
                f"this job owns only {self.owned_rule_name!r}"
            )
        if rule.type != RuleType.ALLOW:
            raise OwnershipError(f"refusing to write rule {rule.id}: it is not an allow rule")

    # ------------------------------------------------------------- transport

    def _request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None
    ) -> dict[str, Any]:
        is_write = method != "GET"
        try:
            for attempt in retrying(self.retry, f"{method} {path}"):
                with attempt:
                    response = self._send(method, path, params=params, json=json, is_write=is_write)
        except Transient as exc:
            if is_write and exc.status_code not in _WRITE_SAFE_RETRY:
                raise AmbiguousWriteError(
                    exc.reason, status_code=exc.status_code, method=method, path=path
                ) from None
            raise ApiError(
                f"{exc.reason} (gave up after retries)",
                status_code=exc.status_code,
                method=method,
                path=path,
            ) from None
        return json_body(response, method, path)

    def _send(
        self, method: str, path: str, *, params: dict[str, Any] | None, json: Any, is_write: bool
    ) -> httpx.Response:
        self.request_count += 1
        try:
            response = self._bounded(
                self._http.build_request(method, path, params=params, json=json)
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # Nothing reached the server: another attempt is safe for reads and writes alike.
            raise Transient(f"cannot connect: {reason(exc)}") from None
        except httpx.TransportError as exc:
            # Sent, but no (complete) answer: a read may be retried, a write is ambiguous.
            if is_write:
                self.write_count += 1
                raise AmbiguousWriteError(
                    f"no answer after sending ({reason(exc)}); the write may have been applied",
                    method=method,
                    path=path,
                ) from None
            raise Transient(f"no answer ({reason(exc)})") from None
        if is_write:
            self.write_count += 1
        status = response.status_code
        if status in RETRYABLE_STATUSES:
            if is_write and status not in _WRITE_SAFE_RETRY:
                raise AmbiguousWriteError(
                    f"HTTP {status} {user_message(response)}; the write may have been applied",
                    status_code=status,
                    method=method,
                    path=path,
                )
            raise Transient(
                f"HTTP {status} {user_message(response)}".strip(),
                status_code=status,
                retry_after=parse_retry_after(response.headers.get("retry-after")),
            )
        if status >= 400:
            if is_write and status == 400:
                raise_if_cidrs_rejected(response, method, path)
            raise error_for(response, method, path, token_source=self.token_source)
        return response

    def _bounded(self, request: httpx.Request) -> httpx.Response:
        """Send `request` and read its body, refusing one over `max_body_bytes` as it streams."""
        limit = self.max_body_bytes
        response = self._http.send(request, stream=True)
        try:
            declared = response.headers.get("content-length", "")
            chunks: list[bytes] = []
            size = 0
            if not (declared.isdigit() and int(declared) > limit):
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > limit:
                        break
                    chunks.append(chunk)
            if size > limit or (declared.isdigit() and int(declared) > limit):
                raise ApiResponseError(
                    f"the answer is over the {limit}-byte limit "
                    "(ALLOWLIST_SYNC_API_MAX_BODY_BYTES)",
                    status_code=response.status_code,
                    method=request.method,
                    path=request.url.path,
                )
        finally:
            response.close()
        self.bytes_received += size
        # The body is decoded already: drop what described the encoded one.
        headers = [
            (k, v)
            for k, v in response.headers.multi_items()
            if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return httpx.Response(
            response.status_code, headers=headers, content=b"".join(chunks), request=request
        )
