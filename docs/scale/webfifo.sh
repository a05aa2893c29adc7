#!/bin/bash
# usage: webfifo.sh EVENTS REQUESTS TAG
# Runs the unmodified `mjlink bench --web` with its scratch trace.jsonl made a FIFO: the
# generated trace goes through zstd to disk, and is fed back decompressed, through a line
# meter, when the bench reads it for the replay. Keeps a 21 GB trace off the disk.
set -u
EV=$1; REQ=$2; TAG=$3
cd /work/scale
T=/work/scale/tmp
mkdir -p $T
(
  sh -c 'd=/work/scale/tmp/mjlink-bench-$$; mkdir -p $d; mkfifo $d/trace.jsonl; echo $$ > /work/scale/'$TAG'.benchpid; exec nice -n 19 /work/scale/mjlink bench --web --events '$EV' --requests '$REQ' --dir /work/scale/tmp --json' > $TAG.json 2> $TAG.err
  echo "bench rc=$?" >> $TAG.err
) &
BG=$!
sleep 1
PID=$(cat $TAG.benchpid)
D=$T/mjlink-bench-$PID
S=$(date +%s.%N)
nice -n 19 zstd -1 -q -T1 < $D/trace.jsonl > $T/$TAG.trace.zst
E=$(date +%s.%N)
echo "generate+compress: $(echo "$E - $S" | bc) s, compressed $(stat -c %s $T/$TAG.trace.zst) bytes" > $TAG.fifo.log
( nice -n 19 zstd -dc $T/$TAG.trace.zst | nice -n 19 python3 /work/scale/bin/meter.py $TAG.meter 500000 > $D/trace.jsonl )
E2=$(date +%s.%N)
echo "replay read: $(echo "$E2 - $E" | bc) s" >> $TAG.fifo.log
rm -f $T/$TAG.trace.zst
wait $BG
E3=$(date +%s.%N)
echo "total: $(echo "$E3 - $S" | bc) s" >> $TAG.fifo.log
