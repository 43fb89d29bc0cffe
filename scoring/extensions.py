"""Engine extensions: features beyond scoring that keep per-user state and react to moments.

An extension is one class in one file (referrals, points, period leaderboards, experiment
outcomes, population health) that the engine calls at each moment of a user's life:

- `on_event`: a counted event of the user;
- `on_message`: a message another user's moment sent to this user (`Routed`) — users live on
  different partitions, so the shells carry messages through the topic `engagement.routed`
  keyed by the recipient (replay delivers them in-process), applied once like any input;
- `on_sweep`: the watermark passed the user's due time (`next_due_ms`).

A moment's outputs: messages to route, `Signal`s that trigger rules turn into triggers (their
`on_signals`), and counter increments the shell adds to its metrics. Extensions never read
clocks or do I/O; everything they keep lives in the user's state or the partition's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

if TYPE_CHECKING:
    from scoring.config import EngageConfig
    from scoring.events import Event
    from scoring.partition_state import PartitionShared
    from scoring.records import Suppression, Trigger
    from scoring.state import UserState


class Routed(msgspec.Struct, kw_only=True):
    """routed/v1: a message to the user `to`, sent by `sender`'s moment at `at_ms`."""

    schema: str = "routed/v1"
    to: str
    kind: str
    at_ms: int
    sender: str
    body: dict[str, Any] = msgspec.field(default_factory=dict)


class Signal:
    """Something an extension decided that a trigger rule may announce (by `kind`)."""

    __slots__ = ("details", "episode", "features", "kind")

    def __init__(
        self, kind: str, episode: str, features: dict[str, Any],
        details: dict[str, Any] | None = None,
    ) -> None:
        self.kind = kind
        self.episode = episode
        self.features = features
        self.details = details or {}


class Moment:
    """One moment of one user, as extensions see it, and what they make of it."""

    __slots__ = (
        "counters", "event", "message", "new_active_day", "now_ms", "routed", "shared",
        "signals", "state", "suppressed", "user_id", "watermark_ms",
    )

    def __init__(
        self,
        user_id: str,
        state: UserState,
        now_ms: int,
        shared: PartitionShared,
        event: Event | None = None,
        message: Routed | None = None,
        new_active_day: bool = False,
        watermark_ms: int = 0,
    ) -> None:
        self.user_id = user_id
        self.state = state
        self.now_ms = now_ms  # event time: the event's, the message's, or the watermark
        self.shared = shared
        self.event = event
        self.message = message
        self.new_active_day = new_active_day
        # the partition's watermark: a message may arrive after its own time has passed there
        self.watermark_ms = max(watermark_ms, now_ms)
        self.routed: list[Routed] = []
        self.signals: list[Signal] = []
        self.counters: list[tuple[str, tuple[str, ...], float]] = []
        self.suppressed: list[Suppression] = []  # triggers a budget held back

    def send(self, to: str, kind: str, **body: Any) -> None:
        self.routed.append(Routed(to=to, kind=kind, at_ms=self.now_ms, sender=self.user_id,
                                  body=body))

    def count(self, name: str, *labels: str, amount: float = 1.0) -> None:
        """Ask the shell to add `amount` to the counter `name` (see sinks/metrics.py)."""
        self.counters.append((name, labels, amount))


class Extension:
    """Base class: override what the feature reacts to."""

    name: ClassVar[str]

    def __init__(self, config: EngageConfig) -> None:
        self.config = config

    def on_event(self, m: Moment) -> None:
        """A counted event (`m.event`), after scores and windows took it into account."""

    def on_message(self, m: Moment) -> None:
        """A message (`m.message`) for this user."""

    def on_sweep(self, m: Moment) -> None:
        """The watermark passed a due time of this user (`m.now_ms` is the watermark)."""

    def on_triggers(self, m: Moment, triggers: list[Trigger]) -> None:
        """Triggers were admitted at this moment (after every rule was heard)."""

    def next_due_ms(self, state: UserState) -> int | None:
        """When this extension needs the user swept (None: never)."""
        return None


BUILTIN_MODULES = (
    "scoring.referrals", "scoring.points", "scoring.leaderboards", "scoring.experiments",
    "scoring.population_health",
)


def builtin_extensions(config: EngageConfig) -> list[Extension]:
    """The built-in extensions, in the order they see each moment."""
    import importlib

    out: list[Extension] = []
    for name in BUILTIN_MODULES:
        module = importlib.import_module(name)
        out += [cls(config) for cls in vars(module).values()
                if isinstance(cls, type) and issubclass(cls, Extension) and cls is not Extension
                and cls.__module__ == name]
    return out
