"""How fast several rtmcall processes can write the call history at once (SPEC §6).

Starts K processes; each writes N rows into one calls.sqlite3, one transaction per row
(the worst case: the softphone's recorder batches whatever is queued into one transaction)
plus one update per row (as a later event does). Reports the wall time, the row writes per
second over all processes, the slowest single write, and checks no row was lost.

    .venv/bin/python bench/history_writers.py --procs 2 --rows 1000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from rtmcall.cli.history.store import HistoryStore, Upsert

    path, who, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    store = HistoryStore(path).open()
    slowest = 0.0
    for i in range(n):
        for fields in (
            {"caller": who, "callee": "p", "peer": "p", "sent_at": time.time()},
            {"rang_at": time.time()},
        ):
            t0 = time.perf_counter()
            store.write([Upsert(who, f"{who}-{i}", "out", fields)])
            slowest = max(slowest, time.perf_counter() - t0)
    store.close()
    print(slowest)
    """
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--rows", type=int, default=1000)
    args = ap.parse_args()
    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "calls.sqlite3"
        from rtmcall.cli.history.store import HistoryStore

        HistoryStore(path).open().close()  # the schema, before the clock starts
        start = time.perf_counter()
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, str(path), f"u{k}", str(args.rows)],
                cwd=repo,
                stdout=subprocess.PIPE,
                text=True,
            )
            for k in range(args.procs)
        ]
        slowest = max(float(p.communicate()[0]) for p in procs)
        elapsed = time.perf_counter() - start
        store = HistoryStore(path).open()
        rows = len(store.query())
        store.close()
    writes = 2 * args.procs * args.rows
    print(
        json.dumps(
            {
                "procs": args.procs,
                "rows_per_proc": args.rows,
                "rows_found": rows,
                "lost": args.procs * args.rows - rows,
                "seconds": round(elapsed, 3),
                "writes_per_s": round(writes / elapsed),
                "slowest_write_ms": round(slowest * 1000, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
