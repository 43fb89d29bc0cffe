"""Chaos run, not a test: the trigger-restart scenario with the local broker frozen (SIGSTOP)
while the second worker starts, as a loaded machine does to a KRaft broker (it is fenced for
a moment and metadata lists topics without partitions). Prints EXACT or the shortfall.

    python -m tests.chaos.freeze_broker --broker 127.0.0.1:19812 --broker-pid PID \\
        --freeze 12 --delay 2 --dir /tmp/freeze-1
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path

from streams.topics import ensure_topics
from tests.integration.worker_process import (
    kill_worker_partway,
    produce,
    read_until_counted,
    running_worker,
    shortfall_report,
    simulated_records,
    unique_names,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", required=True)
    parser.add_argument("--broker-pid", type=int, required=True)
    parser.add_argument("--freeze", type=float, default=12.0, help="seconds the broker stops")
    parser.add_argument("--delay", type=float, default=2.0, help="after the second start")
    parser.add_argument("--dir", type=Path, required=True, help="worker logs and data")
    args = parser.parse_args()
    boot, names = args.broker, unique_names()
    keyed, expected = simulated_records(users=50, days=21, seed=9)
    cut = int(len(keyed) * 0.6)
    ensure_topics(boot, names, 2)
    kill_worker_partway(boot, names, args.dir, keyed[:cut])
    with running_worker(boot, names, args.dir, log_name="second.log", log_level="info") as w:
        time.sleep(args.delay)
        os.kill(args.broker_pid, signal.SIGSTOP)
        time.sleep(args.freeze)
        os.kill(args.broker_pid, signal.SIGCONT)
        time.sleep(3)
        produce(boot, names.interactions, keyed[cut:])
        latest = read_until_counted(boot, names, expected, timeout_s=150)
        counted = {u: r["events_counted"] for u, r in latest.items()}
        if counted == expected:
            print("EXACT")
            return 0
        print("SHORT", shortfall_report(boot, names, expected, counted, w))
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
