"""One run at a time per cache folder: an advisory file lock around the whole pipeline.

Two runs on one machine (a CronJob pod and a person's manual run sharing a volume, or two
`sync` started together by hand) would each plan against a rule the other is changing; the
second waits here for the first to finish, bounded by the run's deadline. Runs on different
machines are not serialised by this: the pipeline settles a duplicate create by itself.
A folder that cannot hold the lock (read-only, missing) costs a warning, never the run.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from allowlist_sync.logs import get_logger
from allowlist_sync.net.deadline import check_run_deadline

log = get_logger(__name__)

LOCK_NAME = "allowlist-sync.lock"
_POLL = 0.1


@contextlib.contextmanager
def run_lock(directory: Path) -> Iterator[None]:
    """Hold the folder's lock for the block; waits for another holder until the run's deadline."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        log.warning("run_lock_unavailable", directory=str(directory), reason=exc.strerror)
        yield
        return
    try:
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited:
                    log.warning("run_lock_wait", directory=str(directory))
                    waited = True
                check_run_deadline()
                time.sleep(_POLL)
        if waited:
            log.info("run_lock_acquired", directory=str(directory))
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
