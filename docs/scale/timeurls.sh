#!/bin/bash
# usage: timeurls.sh URLS.tsv N: each URL N+1 times in a row by one client (curl, one
# keep-alive connection; the first request of each URL is a warm-up, not counted);
# prints name, status, median, p90 and max in ms.
N=$2
while IFS=$'\t' read -r name url; do
  args=()
  for i in $(seq 0 $N); do args+=(-o /dev/null "$url"); done
  nice -n 19 curl -s -w '%{http_code} %{time_total}\n' "${args[@]}" | tail -n +2 | python3 -c 'import sys; v=[l.split() for l in sys.stdin]; t=sorted(float(x[1])*1000 for x in v); n=len(t); print("%-22s %s n=%d median %.2f p90 %.2f max %.2f ms" % (sys.argv[1], v[0][0], n, t[(n-1)//2], t[min(n-1,int(n*0.9))], t[-1]))' "$name"
done < $1
