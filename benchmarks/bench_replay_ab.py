"""`engage replay` of one file by two installations, alternated in one invocation (issue #11).

Each run is the whole process, `engage replay FILE --no-progress`, timed from outside: the
replay's own seconds and events/s (from the summary it prints), wall and user CPU seconds and
peak RSS. Runs alternate (before, after, before, after, ...) so that the load of a shared
machine falls on both alike; medians and their ratios are printed. The summaries of the two
installations are compared too (timings left out): any difference is printed.

    python -m benchmarks.bench_replay_ab FILE --before /work/main/.venv/bin/engage \\
        [--after .venv/bin/engage] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

TIMINGS = ("seconds", "events_per_second")


def run_once(engage: str, path: str) -> dict[str, Any]:
    started = time.perf_counter()
    child = subprocess.Popen([engage, "replay", path, "--no-progress"],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    out = child.stdout.read()
    _pid, status, usage = os.wait4(child.pid, 0)  # this child's own CPU time and peak RSS
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if child.returncode:
        raise SystemExit(f"{engage} replay exited with {child.returncode}")
    summary = json.loads(out)
    return {
        "seconds": summary["seconds"], "events_per_second": summary["events_per_second"],
        "wall": round(wall, 2), "cpu": round(usage.ru_utime, 2),
        "maxrss_mb": usage.ru_maxrss // 1024, "load": round(os.getloadavg()[0], 2),
        "summary": {k: v for k, v in summary.items() if k not in TIMINGS},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--before", required=True, help="the `engage` script measured first")
    parser.add_argument("--after", default=str(Path(sys.executable).parent / "engage"))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    for i in range(args.runs):
        for name in ("before", "after"):
            result = run_once(getattr(args, name), args.file)
            runs[name].append(result)
            shown = {k: v for k, v in result.items() if k != "summary"}
            print(f"run {i + 1} {name}: {json.dumps(shown)}", flush=True)
    medians = {
        name: {k: statistics.median(r[k] for r in rs)
               for k in ("seconds", "events_per_second", "wall", "cpu")}
        for name, rs in runs.items()
    }
    ratios = {k: round(medians["before"][k] / medians["after"][k], 3)
              for k in ("seconds", "wall", "cpu")}
    same = all(r["summary"] == runs["before"][0]["summary"]
               for rs in runs.values() for r in rs)
    print(json.dumps({"file": args.file, "runs": args.runs, "medians": medians,
                      "before_over_after": ratios, "summaries_identical": same}, indent=2))
    if not same:
        first = runs["before"][0]["summary"]
        for r in runs["after"]:
            diff = {k: (first.get(k), r["summary"].get(k)) for k in first.keys() | r["summary"]
                    if first.get(k) != r["summary"].get(k)}
            print("summary differs:", json.dumps(diff, default=str))


if __name__ == "__main__":
    main()
