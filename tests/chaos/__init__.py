"""Chaos scenarios through the real broker: faulty workers, and what must still hold."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path


def scenario_main(
    doc: str | None,
    scenario: Callable[[str, Path], str],
    faulty_worker: Callable[[list[str]], int],
) -> int:
    """A chaos scenario's command line. `worker ...`: the faulty worker (running_worker
    starts it so); otherwise `--broker` and `--dir` run the scenario, which returns its
    verdict, printed with the time it took."""
    if sys.argv[1:2] == ["worker"]:
        return faulty_worker(sys.argv[1:])
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("--broker", required=True)
    parser.add_argument("--dir", type=Path, required=True, help="worker logs and data")
    args = parser.parse_args()
    started = time.monotonic()
    verdict = scenario(args.broker, args.dir)
    print(verdict, f"({time.monotonic() - started:.0f} s; logs in {args.dir})")
    return 0
