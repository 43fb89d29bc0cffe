"""Observation points on a log scale of silence: labelling cost follows events, not users x days.

The daily design opens a point on every user's daily sweep, so a silent customer costs a sweep
a day and holds up to horizon + 1 open points, and — once labelled churned — is never observed
again, although the model is later asked about customers silent for months.

Here every counted event (the *anchor*) schedules one candidate point per octave of silence:
[0, 1) day, [1, 2), [2, 4), [4, 8), ... up to `max_silence_days`. Within its octave a point's
offset is fixed by a hash of (user, anchor time), so a replay places it identically. A point
*opens* when the user's silence reaches it (nothing has to visit the user then: their state
does not change until the next event, so features are recomputed at resolution from the state,
exactly as they were at the point). A point resolves:

- **0 (returned)** on the next counted event at t with observed < t <= observed + horizon;
- **1 (churned)** when the watermark passes observed + horizon with no such event (or when
  the next event comes later than that before a sweep got there).

The next event resolves every open point at once and anchors a new schedule. Points resolve
in octave order, so the per-user state is one small count (`resolved`: how many of the current
anchor's points were already labelled churned) beside the anchor time the engine keeps anyway.
A silence of S days costs about log2(S) + 2 points and at most that many sweeps; a user who
returns before the first deadline costs none. At most `octaves` points are open at once.

Each point stands for `weight` days of silence (its octave's width): weighting examples by it
(Horvitz-Thompson) gives the loss of the design that observes every user every day — which is
also the population a cut-off scores — without paying for it.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass

from scoring.timeutil import MS_PER_DAY

_BYTES_PER_OFFSET = 3
_MAX_OCTAVES = 64 // _BYTES_PER_OFFSET  # blake2b digests are at most 64 bytes
CACHED_ANCHORS = 1 << 16  # (user, anchor) schedules kept computed (a few MB at most)


@dataclass(frozen=True, slots=True)
class ObservationPoint:
    octave: int
    observed_ms: int
    weight: float  # days of silence this point stands for (its octave's width)


@dataclass(frozen=True, slots=True)
class ResolvedPoint:
    point: ObservationPoint
    label: int  # 1 churned, 0 returned within the horizon
    resolved_ms: int


class ObservationSchedule:
    """Where a user's observation points fall after an event, and how they resolve."""

    def __init__(
        self,
        horizon_days: float,
        max_silence_days: float = 730.0,
        resolve_slack_days: float = 0.0,
        salt: bytes = b"engage-churn-observations/1",
    ) -> None:
        if not horizon_days > 0:
            raise ValueError("horizon_days must be > 0")
        if not 1.0 <= max_silence_days <= 2.0 ** (_MAX_OCTAVES - 2):
            raise ValueError(f"max_silence_days must be in [1, {2 ** (_MAX_OCTAVES - 2)}]")
        if resolve_slack_days < 0:
            raise ValueError("resolve_slack_days must be >= 0")
        self.horizon_ms = round(horizon_days * MS_PER_DAY)
        self.slack_ms = round(resolve_slack_days * MS_PER_DAY)
        self.salt = salt
        bounds = [(0.0, 1.0)]
        while bounds[-1][1] < max_silence_days:
            low = bounds[-1][1]
            bounds.append((low, min(2 * low, max_silence_days)))
        self.octave_bounds_days: tuple[tuple[float, float], ...] = tuple(bounds)
        self.octaves = len(bounds)
        # the hash of the salt alone, continued per (user, anchor): the same digest as hashing
        # salt + name + anchor in one go, without hashing the salt every time
        self._salted = hashlib.blake2b(salt, digest_size=_BYTES_PER_OFFSET * self.octaves)
        # (user, anchor) -> its points as computed so far (None: not yet): an anchor is asked
        # about on every event, sweep and reschedule of its user, each a blake2b digest and
        # a point without this; a cache of the latest anchors, oldest evicted first. The
        # event that re-anchors a user drops the old anchor (`on_event`), so it holds about
        # one anchor per active user, not one per event (each a list and points the cyclic
        # garbage collector would scan again and again)
        self._cache: OrderedDict[
            tuple[str | int, int], tuple[bytes, list[ObservationPoint | None]]
        ] = OrderedDict()

    def _digest(self, user: str | int, anchor_ms: int) -> bytes:
        """`user`: the user id, or a stable integer key of it (the engine keeps a 16-bit
        hash in the user's state, so due times need nothing but the state)."""
        name = user.encode() if isinstance(user, str) else user.to_bytes(8, "big", signed=True)
        h = self._salted.copy()
        h.update(name + b"\x00" + anchor_ms.to_bytes(8, "big", signed=True))
        return h.digest()

    def _point(self, digest: bytes, octave: int, anchor_ms: int) -> ObservationPoint:
        low, high = self.octave_bounds_days[octave]
        chunk = digest[_BYTES_PER_OFFSET * octave : _BYTES_PER_OFFSET * (octave + 1)]
        fraction = int.from_bytes(chunk, "big") / (1 << (8 * _BYTES_PER_OFFSET))
        offset_ms = math.floor((low + fraction * (high - low)) * MS_PER_DAY)
        return ObservationPoint(octave, anchor_ms + offset_ms, high - low)

    def _points(
        self, user_id: str | int, anchor_ms: int
    ) -> tuple[bytes, list[ObservationPoint | None]]:
        key = (user_id, anchor_ms)
        entry = self._cache.get(key)
        if entry is None:
            cache = self._cache
            if len(cache) >= CACHED_ANCHORS:
                cache.popitem(last=False)  # the oldest (O(1), unlike a plain dict's first key)
            entry = cache[key] = (self._digest(user_id, anchor_ms), [None] * self.octaves)
        return entry

    def _cached(
        self, entry: tuple[bytes, list[ObservationPoint | None]], octave: int, anchor_ms: int
    ) -> ObservationPoint:
        digest, points = entry
        point = points[octave]
        if point is None:
            point = points[octave] = self._point(digest, octave, anchor_ms)
        return point

    def points(self, user_id: str | int, anchor_ms: int) -> tuple[ObservationPoint, ...]:
        """Every candidate point after an event at `anchor_ms`, in time (= octave) order."""
        entry = self._points(user_id, anchor_ms)
        return tuple(self._cached(entry, octave, anchor_ms) for octave in range(self.octaves))

    def on_event(
        self, user_id: str | int, anchor_ms: int, resolved: int, event_ms: int
    ) -> list[ResolvedPoint]:
        """The labels a counted event at `event_ms` (after the anchor) settles: every point
        opened before it and not yet labelled. The caller then re-anchors at `event_ms` with
        `resolved` = 0."""
        if event_ms < anchor_ms:
            raise ValueError("an event before the anchor is late: it resolves nothing")
        out: list[ResolvedPoint] = []
        entry = self._points(user_id, anchor_ms)
        for octave in range(resolved, self.octaves):
            point = self._cached(entry, octave, anchor_ms)
            if point.observed_ms >= event_ms:
                break
            deadline = point.observed_ms + self.horizon_ms
            if event_ms <= deadline:
                out.append(ResolvedPoint(point, 0, event_ms))
            else:
                out.append(ResolvedPoint(point, 1, deadline))
        if event_ms > anchor_ms:  # re-anchored: this anchor is not asked about again
            self._cache.pop((user_id, anchor_ms), None)
        return out

    def on_watermark(
        self, user_id: str | int, anchor_ms: int, resolved: int, watermark_ms: int
    ) -> tuple[list[ResolvedPoint], int]:
        """Points whose horizon the watermark passed with no return: (churned labels, the new
        `resolved` count)."""
        out: list[ResolvedPoint] = []
        entry = self._points(user_id, anchor_ms)
        for octave in range(resolved, self.octaves):
            point = self._cached(entry, octave, anchor_ms)
            deadline = point.observed_ms + self.horizon_ms
            if watermark_ms <= deadline:
                break
            out.append(ResolvedPoint(point, 1, deadline))
        return out, resolved + len(out)

    def next_due_ms(self, user_id: str | int, anchor_ms: int, resolved: int) -> int | None:
        """When a sweep next has something to label (None once every point is labelled)."""
        if resolved >= self.octaves:
            return None
        point = self._cached(self._points(user_id, anchor_ms), resolved, anchor_ms)
        return point.observed_ms + self.horizon_ms + 1 + self.slack_ms
