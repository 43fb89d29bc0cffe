"""Chaos run: a second worker joins while the first one is still on its first batch, so a
partition it keeps through the rebalance has no committed offset yet (a cold start on a
loaded machine). Faust seeks only committed partitions back after a rebalance; this one
stayed where the consumer had fetched to, and the first batch's records, fetched in the old
generation and so not scored, never came again (issue #9: users of a partition that kept
its owner counted short, every partition committed to its end). Prints EXACT or the
shortfall.

    python -m tests.chaos.first_batch_rebalance --broker 127.0.0.1:19812 --dir /tmp/fbr-1
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streams.topics import ensure_topics
from tests.chaos import scenario_main
from tests.integration.worker_process import (
    produce,
    read_until_counted,
    running_worker,
    shortfall_report,
    simulated_records,
    unique_names,
)

FIRST_BATCH_DELAY_S = 20.0
SEEK_DELAY_S = 3.0


def faulty_worker(argv: list[str]) -> int:
    """`engage worker` whose first batch takes 20 s more before it is scored, and whose
    consumer's seek after a recovery is 3 s slow (a slow offset fetch)."""
    import asyncio

    from faust.transport.consumer import Consumer

    import streams.app as worker_app

    process = worker_app.EngageWorker.process
    perform_seek = Consumer.perform_seek
    delayed: list[bool] = []

    async def late_seek(self: Any) -> None:
        if self.flow_active:  # the seek after a recovery, not the fetcher's (flow stopped)
            await asyncio.sleep(SEEK_DELAY_S)
        await perform_seek(self)

    async def slow_first(self: Any, records: Any, generations: Any) -> Any:
        if not delayed:
            delayed.append(True)
            await asyncio.sleep(FIRST_BATCH_DELAY_S)
        return await process(self, records, generations)

    worker_app.EngageWorker.process = slow_first  # type: ignore[method-assign]
    Consumer.perform_seek = late_seek  # type: ignore[method-assign]
    from streams.cli import main

    return main(argv)


def rebalance_during_first_batch(boot: str, work_dir: Path) -> str:
    """The users counted short (with each input partition's committed and end offsets), or
    "" when every user is counted exactly."""
    names = unique_names()
    keyed, expected = simulated_records(users=40, days=14, seed=3)
    ensure_topics(boot, names, 2)
    with running_worker(boot, names, work_dir, log_name="first.log", log_level="info",
                        module="tests.chaos.first_batch_rebalance") as first:
        first.wait_json("/readyz/", lambda status, _body: status == 200, timeout_s=180)
        produce(boot, names.interactions, keyed)
        with running_worker(boot, names, work_dir, log_name="joining.log",
                            log_level="info") as joining:
            joining.wait_json("/readyz/", lambda status, _body: status == 200, timeout_s=180)
            latest = read_until_counted(boot, names, expected, timeout_s=180,
                                        while_growing_s=45)
            counted = {u: r["events_counted"] for u, r in latest.items()}
            if counted == dict(expected):
                return ""
            return shortfall_report(boot, names, dict(expected), counted, first)


def verdict(boot: str, work_dir: Path) -> str:
    shortfall = rebalance_during_first_batch(boot, work_dir)
    return f"SHORT: {shortfall}" if shortfall else "EXACT"


if __name__ == "__main__":
    raise SystemExit(scenario_main(__doc__, verdict, faulty_worker))
