#!/usr/bin/env python3
# Replay rate per tenth of the trace from a meter log (seconds, lines).
import sys
pts = [tuple(map(float, l.split()[:2])) for l in open(sys.argv[1])]
total = pts[-1][1]
def t_at(n):
    for (t0, n0), (t1, n1) in zip(pts, pts[1:]):
        if n0 <= n <= n1:
            return t0 + (t1 - t0) * (n - n0) / max(n1 - n0, 1)
    return pts[-1][0]
out = []
for k in range(10):
    a, b = total * k / 10, total * (k + 1) / 10
    out.append(round((b - a) / (t_at(b) - t_at(a))))
print("per tenth ev/s:", out)
print("whole: %.0f ev/s over %.1f s" % (total / pts[-1][0], pts[-1][0]))
