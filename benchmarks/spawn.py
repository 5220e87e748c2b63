#!/usr/bin/env python3
"""Run one command and print its wall time, CPU time, peak RSS and exit code as JSON.

The benchmark driver is a large process (it hosts the emulator); on Linux a child forked from
it inherits that high-water mark in `ru_maxrss` even after exec. Spawning from this small
process instead keeps the measured peak RSS the command's own.

usage: spawn.py [--stderr FILE] COMMAND [ARG ...]

With `--stderr FILE` the command's stderr (its log events) is written to FILE, for the driver
to count events in; otherwise it is discarded, as stdout always is.
"""

import json
import os
import subprocess
import sys
import time

argv = sys.argv[1:]
stderr = subprocess.DEVNULL
if argv[:1] == ["--stderr"]:
    stderr = open(argv[1], "wb")  # noqa: SIM115 - held until this short process exits
    argv = argv[2:]
started = time.perf_counter()
proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=stderr)
_, status, usage = os.wait4(proc.pid, 0)
elapsed = time.perf_counter() - started
print(
    json.dumps(
        {
            "seconds": elapsed,
            "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "peak_rss_mib": usage.ru_maxrss / 1024,
            "code": os.waitstatus_to_exitcode(status),
        }
    )
)
