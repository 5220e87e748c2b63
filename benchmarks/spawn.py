#!/usr/bin/env python3
"""Run one command and print its wall time, peak RSS and exit code as JSON.

The benchmark driver is a large process (it hosts the emulator); on Linux a child forked from
it inherits that high-water mark in `ru_maxrss` even after exec. Spawning from this small
process instead keeps the measured peak RSS the command's own.

usage: spawn.py COMMAND [ARG ...]
"""

import json
import os
import subprocess
import sys
import time

started = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
elapsed = time.perf_counter() - started
print(
    json.dumps(
        {
            "seconds": elapsed,
            "peak_rss_mib": usage.ru_maxrss / 1024,
            "code": os.waitstatus_to_exitcode(status),
        }
    )
)
