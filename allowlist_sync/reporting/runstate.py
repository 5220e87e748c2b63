"""What reporting remembers between processes: the last success, the failure streak, the incident.

One small JSON file per target in the cache folder (beside the feed cache, the same volume in a
container), so that `serve` after a restart and a CronJob's next one-shot run still know

    last_success            when the rule was last synced (Unix time): the metric alerts use
    consecutive_failures    unsuccessful runs since then
    incident                the failure being reported ("exit 1", "exit 77", ...), or None:
                            a failure notifies once, a success after it once more

It is written through a temporary file and `os.replace`, so a reader sees the old state or the
new one, never half of one. Like the feed cache it is best effort: a state that cannot be read
is a warning and a fresh start, one that cannot be written is a warning, never a failed run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from allowlist_sync.logs import get_logger

log = get_logger(__name__)

STATE_FORMAT = 1
#: The largest state file read; anything bigger is not ours.
MAX_STATE_BYTES = 64 * 1024


@dataclass
class RunState:
    """The remembered state of one target (account and rule; dry runs apart)."""

    last_success: float | None = None
    consecutive_failures: int = 0
    incident: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The file's content."""
        return {"format": STATE_FORMAT, **asdict(self)}


def state_path(directory: Path, *, account_id: int, rule_name: str, dry_run: bool) -> Path:
    """The state file of one target in `directory`; dry runs keep a state of their own."""
    key = f"{account_id}\0{rule_name}\0{'dry-run' if dry_run else 'apply'}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return directory / f"run-state.{account_id}.{digest}.json"


def load_state(path: Path) -> RunState:
    """The state in `path`; a fresh one when it is missing, and (with a warning) when unusable."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_STATE_BYTES + 1)
    except FileNotFoundError:
        return RunState()
    except OSError as exc:
        log.warning("run_state_unreadable", path=str(path), error=exc.strerror or str(exc))
        return RunState()
    try:
        if len(raw) > MAX_STATE_BYTES:
            raise ValueError(f"larger than {MAX_STATE_BYTES} bytes")
        return _parse(json.loads(raw))
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly nested JSON
        log.warning("run_state_ignored", path=str(path), error=str(exc)[:200])
        return RunState()


def save_state(path: Path, state: RunState) -> bool:
    """Replace `path` with `state` atomically; False (and a warning) when it cannot be written."""
    data = json.dumps(state.to_json(), sort_keys=True).encode() + b"\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        log.warning("run_state_not_saved", path=str(path), error=exc.strerror or str(exc))
        return False
    return True


def _parse(doc: Any) -> RunState:
    if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT:
        raise ValueError("not a run-state file of this version")
    last_success = doc.get("last_success")
    failures = doc.get("consecutive_failures", 0)
    incident = doc.get("incident")
    if last_success is not None and (
        isinstance(last_success, bool)
        or not isinstance(last_success, int | float)
        or not 0 < last_success < 1e11
    ):
        raise ValueError("last_success is not a positive Unix time")
    if isinstance(failures, bool) or not isinstance(failures, int) or not 0 <= failures < 10**9:
        raise ValueError("consecutive_failures is not a count")
    if incident is not None and (not isinstance(incident, str) or len(incident) > 64):
        raise ValueError("incident is not a short string")
    return RunState(
        last_success=float(last_success) if last_success is not None else None,
        consecutive_failures=failures,
        incident=incident,
    )
