#!/bin/bash
# usage: keepdb.sh TAG DEST: when the bench TAG starts warming up (setup done, the database
# complete and only read from then on), hard-link its web.db and web.db-wal into DEST.
TAG=$1; DEST=$2
mkdir -p $DEST
while ! grep -q "warming up" /work/scale/$TAG.err 2>/dev/null; do sleep 2; done
PID=$(cat /work/scale/$TAG.benchpid)
D=/work/scale/tmp/mjlink-bench-$PID
for f in web.db web.db-wal; do [ -e $D/$f ] && ln $D/$f $DEST/$f; done
date -u > $DEST/linked_at; ls -l $DEST >> $DEST/linked_at
