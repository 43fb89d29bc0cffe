"""`engage watch`: a live console of what the scorer decides, calm enough to read.

Every `--every` seconds (10) one summary line: the event time reached, users scored, how
many hold each tier, the triggers of the interval by type (control-group triggers counted
apart) and dead letters. Between summaries, the notable triggers one by one, with the
user's score and tier move; a control-group trigger (held out: not sent to anyone) is
marked as such. Triggers are read from `triggers.audit`, which carries both groups.
`--scores` adds every score record, `--all` every trigger.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from kafka import KafkaConsumer

from streams.topics import TopicNames

NOTABLE = ("vip_promotion", "ambassador_candidate", "referral_ask", "win_back",
           "reengagement_nudge")
MAX_NOTABLE_PER_INTERVAL = 6


class Console:
    """Turns records into lines; `flush()` ends an interval with its summary line."""

    def __init__(
        self, names: TopicNames, show_scores: bool = False, show_all: bool = False,
        tiers: tuple[str, ...] = ("bronze", "silver", "gold", "vip"),
        emit: Callable[[str], None] = print,
    ) -> None:
        self.names = names
        self.show_scores = show_scores
        self.show_all = show_all
        self.tiers = tiers
        self.emit = emit
        self.tier_of: dict[str, str] = {}
        self.event_time = ""
        self.triggers: Counter[str] = Counter()
        self.controls = 0
        self.dead_letters = 0
        self.notable_shown = 0
        self.notable_skipped = 0
        self.totals: Counter[str] = Counter()

    def record(self, topic: str, value: dict[str, Any]) -> None:
        self.totals[topic] += 1
        if topic == self.names.scores:
            self.tier_of[str(value["user_id"])] = str(value.get("tier", ""))
            self.event_time = max(self.event_time, str(value.get("as_of", "")))
            if self.show_scores:
                self.emit(score_line(value))
        elif topic == self.names.dlq:
            self.dead_letters += 1
        elif topic == self.names.audit:
            self._trigger(value)

    def _trigger(self, value: dict[str, Any]) -> None:
        kind = str(value.get("type"))
        control = value.get("variant") == "control"
        self.triggers[kind] += 1
        self.controls += control
        if not (self.show_all or kind in NOTABLE):
            return
        if self.notable_shown >= MAX_NOTABLE_PER_INTERVAL and not self.show_all:
            self.notable_skipped += 1
            return
        self.notable_shown += 1
        self.emit(trigger_line(value))

    def flush(self) -> None:
        """The interval's summary line (nothing before the first record)."""
        if not self.totals:
            return
        held = Counter(self.tier_of.values())
        tiers = " · ".join(f"{t} {held[t]}" for t in self.tiers)
        if self.triggers:
            kinds = ", ".join(f"{k} {n}" for k, n in self.triggers.most_common())
            control = f" ({self.controls} control)" if self.controls else ""
            triggers = f"triggers {sum(self.triggers.values())}{control}: {kinds}"
        else:
            triggers = "no triggers"
        more = f" | {self.notable_skipped} more notable not shown" if self.notable_skipped else ""
        dead = f" | dead letters {self.dead_letters}" if self.dead_letters else ""
        when = self.event_time[:16].replace("T", " ") or "-"
        self.emit(f"── {when} | {len(self.tier_of)} users | {tiers} | {triggers}{dead}{more}")
        self.triggers.clear()
        self.controls = self.dead_letters = self.notable_shown = self.notable_skipped = 0


def score_line(v: dict[str, Any]) -> str:
    churn = v.get("churn_probability")
    churn_text = f"{churn:.2f}" if isinstance(churn, float) else "  - "
    return (f"   score  {v['user_id']!s:<10} {float(v['engagement_score']):5.1f} "
            f"{v['tier']!s:<7} churn {churn_text}  ({v.get('calibration', 'absolute')}) "
            f"at {v['as_of']}")


def trigger_line(v: dict[str, Any]) -> str:
    details = v.get("details") or {}
    tier = str(v.get("tier", ""))
    move = (f"{details['from_tier']} → {details['to_tier']}"
            if isinstance(details, dict) and "from_tier" in details else tier)
    group = "  [control: held out, not sent]" if v.get("variant") == "control" else ""
    when = str(v.get("event_time", ""))[:16].replace("T", " ")
    return (f"   {str(v.get('type')).replace('_', ' '):<20} {v.get('user_id')!s:<10} "
            f"score {float(v.get('score') or 0.0):5.1f}  {move:<16} {when}{group}")


def watch(
    broker: str, seconds: float | None = None, show_scores: bool = False,
    names: TopicNames | None = None, every_s: float = 10.0, show_all: bool = False,
    client: Mapping[str, Any] | None = None,
) -> int:
    """Print notable triggers as they land and a summary line every `every_s` seconds.
    `client`: security settings for kafka-python (streams.kafka_security)."""
    names = names or TopicNames()
    console = Console(names, show_scores=show_scores, show_all=show_all,
                      emit=lambda line: print(line, flush=True))
    consumer = KafkaConsumer(
        names.audit, names.scores, names.dlq, bootstrap_servers=broker,
        auto_offset_reset="latest", enable_auto_commit=False, group_id=None,
        consumer_timeout_ms=500, **(client or {}),
    )
    deadline = time.monotonic() + seconds if seconds else None
    next_summary = time.monotonic() + every_s
    try:
        while deadline is None or time.monotonic() < deadline:
            for message in consumer:
                console.record(message.topic, json.loads(message.value))
                now = time.monotonic()
                if now >= next_summary or (deadline is not None and now >= deadline):
                    break
            if time.monotonic() >= next_summary:
                console.flush()
                next_summary = time.monotonic() + every_s
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
        console.flush()
    print("totals: " + ", ".join(f"{t}={n}" for t, n in sorted(console.totals.items())))
    return 0
