#!/usr/bin/env python3
# Read-only look at a database: rows of the main tables, indexes, bytes per table and index.
import sqlite3, sys, time, json, os
path = sys.argv[1]
c = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
out = {"file_bytes": os.path.getsize(path)}
for p in ("user_version", "page_size", "page_count", "freelist_count", "journal_mode"):
    out[p] = c.execute(f"PRAGMA {p}").fetchone()[0]
rows = {}
for t in ("messages", "docs", "attachments", "links", "processed", "channels", "manual_links",
          "undecodable", "drift_samples", "notify_outbox", "queue_items", "prompts_fts_docsize"):
    try:
        t0 = time.time()
        rows[t] = c.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
    except Exception as e:
        rows[t] = str(e)
out["rows"] = rows
out["kinds"] = dict(c.execute("SELECT kind, count(*) FROM messages GROUP BY kind ORDER BY 2 DESC").fetchall())
out["links_by_status"] = dict(c.execute("SELECT status, count(*) FROM links GROUP BY status").fetchall())
out["attachments_by_state"] = dict(c.execute("SELECT state, count(*) FROM attachments GROUP BY state").fetchall())
out["indexes"] = [r for r in c.execute("SELECT tbl_name, name, sql FROM sqlite_master WHERE type='index' ORDER BY tbl_name, name")]
t0 = time.time()
sizes = c.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC").fetchall()
out["bytes_by_object"] = dict(sizes)
out["dbstat_seconds"] = round(time.time() - t0, 1)
json.dump(out, sys.stdout, indent=1)
