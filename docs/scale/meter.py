#!/usr/bin/env python3
# Copies stdin to stdout in 1 MiB chunks, logging (seconds since start, lines so far)
# every `step` lines to the log file given as argv[1].
import os, sys, time
log = open(sys.argv[1], "w", buffering=1)
step = int(sys.argv[2]) if len(sys.argv) > 2 else 500000
start = time.monotonic()
lines = 0
mark = step
inp, out = sys.stdin.fileno(), sys.stdout.fileno()
log.write(f"0.000 0\n")
while True:
    chunk = os.read(inp, 1 << 20)
    if not chunk:
        break
    view = memoryview(chunk)
    while view:
        n = os.write(out, view)
        view = view[n:]
    lines += chunk.count(b"\n")
    if lines >= mark:
        log.write(f"{time.monotonic() - start:.3f} {lines}\n")
        while mark <= lines:
            mark += step
log.write(f"{time.monotonic() - start:.3f} {lines} end\n")
