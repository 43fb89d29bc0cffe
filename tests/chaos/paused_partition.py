"""Chaos run, not a test: the real worker with one input partition paused in Faust's consumer
8 s after it starts (and never resumed), then a backlog on every partition. Shows what the
stall watcher logs (`input … stalled`, with the consumer's state) and `/readyz` when a
partition stops being read: its records never reach the scoring agent. Prints EXACT or
SHORT n.

    python -m tests.chaos.paused_partition --broker 127.0.0.1:19812 --dir /tmp/paused-1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from streams.topics import ensure_topics
from tests.integration.worker_process import (
    produce,
    read_until_counted,
    running_worker,
    simulated_records,
    unique_names,
)


def faulty_worker(argv: list[str]) -> int:
    """`engage worker`, with the fault added to the app before it starts."""
    from faust.types import TP

    import streams.app as worker_app

    register = worker_app.EngageWorker._register

    def with_fault(self: Any) -> None:
        register(self)
        done: list[bool] = []

        @self.app.timer(8.0)
        async def pause_one_partition() -> None:
            if not done:
                done.append(True)
                self.app.consumer.pause_partitions({TP(self.names.interactions, 1)})

    worker_app.EngageWorker._register = with_fault  # type: ignore[method-assign]
    from streams.cli import main

    return main(argv)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", required=True)
    parser.add_argument("--dir", type=Path, required=True, help="worker log and data")
    args = parser.parse_args()
    boot, names = args.broker, unique_names()
    keyed, expected = simulated_records(users=30, days=14, seed=3)
    ensure_topics(boot, names, 2)
    with running_worker(boot, names, args.dir, log_level="info",
                        module="tests.chaos.paused_partition"):
        time.sleep(12)
        produce(boot, names.interactions, keyed)
        latest = read_until_counted(boot, names, expected, timeout_s=90)
    counted = sum(r["events_counted"] for r in latest.values())
    print("EXACT" if counted == sum(expected.values())
          else f"SHORT {sum(expected.values()) - counted}; see {args.dir / 'worker.log'}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:  # started by running_worker as the faulty worker
        raise SystemExit(faulty_worker(sys.argv[1:]))
    raise SystemExit(main())
