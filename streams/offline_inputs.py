"""The inputs of the offline growth commands (uplift, report, what-if): event files as
`engage replay` reads them and trigger files as `engage replay --triggers` writes them
(JSONL, optionally gzipped). Problems with them are usage errors: one line, exit 2."""

from __future__ import annotations

import os
import time
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from scoring.config import EngageConfig
from scoring.events import Event, EventRules, InvalidEvent, decode_event
from scoring.trigger_records import BadTriggerRecord, TriggerRecord, decode_trigger
from streams.cli import UsageError


def require_file(path: str, what: str) -> None:
    if not os.path.exists(path):
        raise UsageError(f"{what} file not found: {path}")
    if not os.path.isfile(path):
        raise UsageError(f"{what} is not a file: {path}")


def file_lines(path: str, what: str) -> Iterator[bytes]:
    """The non-blank lines of a JSONL or JSONL.gz file."""
    from streams.replay import open_lines  # imports river: only when a command runs

    require_file(path, what)
    try:
        with open_lines(path) as fh:
            for line in fh:
                line = line.strip()
                if line:
                    yield line
    except (OSError, EOFError, zlib.error) as exc:  # unreadable, or not / truncated gzip
        raise UsageError(f"cannot read {what} file {path}: {exc}") from None


@dataclass
class EventScan:
    """What reading the events found: how many were valid, why the others were not."""

    source: str
    valid: int = 0
    invalid: Counter[str] = field(default_factory=Counter)

    def require_some(self) -> None:
        if not self.valid:
            found = ", ".join(f"{n} {reason}" for reason, n in self.invalid.most_common())
            raise UsageError(f"no valid events in {self.source}"
                             + (f" (rejected: {found})" if found else ""))


def valid_events(lines: Iterable[bytes], config: EngageConfig, scan: EventScan) -> Iterator[Event]:
    """Events that pass the contract (docs/events.md), as replay would accept them; the
    others are counted in `scan` by reason and skipped, as replay dead-letters them."""
    rules = EventRules.from_config(config)
    now_ms = int(time.time() * 1000)
    for line in lines:
        try:
            event = decode_event(line, now_ms=now_ms, rules=rules)
        except InvalidEvent as exc:
            scan.invalid[exc.reason] += 1
            continue
        scan.valid += 1
        yield event


def read_triggers(lines: Iterable[bytes], source: str) -> list[TriggerRecord]:
    """Trigger v1 records; the audit topic's other records (what a budget held back,
    `trigger-suppressed/v1`) are not triggers a user received and are passed over."""
    records = []
    for n, line in enumerate(lines, 1):
        if b'"trigger-suppressed/v1"' in line[:64]:
            continue
        try:
            records.append(decode_trigger(line))
        except BadTriggerRecord as exc:
            raise UsageError(f"{source}, record {n}: not a trigger v1 record ({exc})") from None
    return records
