#!/usr/bin/env python3
# The URLs timed one at a time against `mjlink serve` on a kept database (read-only here).
import sqlite3, sys
db, base = sys.argv[1], sys.argv[2]
c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
one = lambda sql: c.execute(sql).fetchone()[0]
newest_child = one("SELECT max(child_id) FROM links WHERE status='linked'")
oldest_child = one("SELECT min(child_id) FROM links WHERE status='linked'")
oldest_root = one("SELECT min(id) FROM messages WHERE kind='imagine'")
users = [r[0] for r in c.execute("SELECT user_id, count(*) FROM messages WHERE kind='imagine' GROUP BY user_id ORDER BY 2 LIMIT 1")]
channel = one("SELECT channel_id FROM messages WHERE kind='imagine' GROUP BY channel_id ORDER BY count(*) LIMIT 1")
# a common word (from the newest prompts) and a word that matches nothing
prompt = one("SELECT prompt FROM messages WHERE kind='imagine' AND prompt IS NOT NULL ORDER BY id DESC LIMIT 1")
word = max((w for w in prompt.split() if w.isalpha()), key=len)
groups = {
  "stats page": f"{base}/stats",
  "api stats": f"{base}/api/stats",
  "gallery newest": f"{base}/",
  "gallery oldest page": f"{base}/?before={oldest_root + 1}",
  f"gallery one user": f"{base}/?user={users[0]}",
  f"gallery one channel": f"{base}/?channel={channel}",
  "family newest": f"{base}/family/{newest_child}",
  "family oldest": f"{base}/family/{oldest_child}",
  f"search common word": f"{base}/search?q={word}",
  "search no match": f"{base}/search?q=zzqqxxnomatch",
}
for name, url in groups.items():
    print(f"{name}\t{url}")
