"""Referral attribution with fraud checks (an engine extension).

A `referral` event of user R names the invitee I (`properties.target_user_id`). R and I live
on different partitions, so the steps travel as messages keyed by their recipient. In a
backlog a message can reach its recipient after events that came later in event time, so
every decision here depends on event times and state, never on arrival order:

1. R's referral event sends `invite` to I with R's invite chain (who invited R, who invited
   them, ... up to `ring_depth`). The earliest invite (event time) of a user not seen before
   it wins, whichever arrived first (a later one told of a conversion is told to `retract`
   it); invites to existing users are not referrals.
2. A user compares every chain it learns with itself and its own invitees: a match closes a
   ring (A invites B invites C invites A). Every member is told (`ring`). A user whose
   chain changes passes the new chain on to its invitees (`chain`), so a ring is found
   whatever order its invites were processed in.
3. I's first qualifying action (a purchase by default, or `qualify_active_days` active days)
   is recorded when it happens, invite or not; once I has a referrer and that action came
   within `window_days` after the invite, I sends `converted` to R with evidence: I's
   active days and events at that moment, and how soon after the invite it came.
4. R holds each conversion for `hold_days` of its own event time after the news arrived, so
   that corrections from other partitions (a ring, an earlier invite's retraction) are in;
   then credits it (`referral_converted`) unless it is suspicious, which is
   withheld and flagged (`referral_flagged`, with the evidence): a ring; an invitee with no
   activity of its own (`thin`: at most `thin_max_active_days` active days and
   `thin_max_events` events when it qualified) — a `farm` once the referrer has
   `farm_min_thin` such invitees; a `burst` (the `burst_count`-th conversion within
   `burst_minutes`, counting those that qualified before it). A self-referral is flagged at
   once. Each invitee is credited or flagged once, and each ring flagged once, by its first
   member in id order, whichever member found it.
"""

from __future__ import annotations

from typing import ClassVar

from scoring.config import EngageConfig
from scoring.extensions import Extension, Moment, Signal
from scoring.referral_state import ReferralState, short_hash
from scoring.state import UserState
from scoring.timeutil import MS_PER_DAY, MS_PER_MINUTE

CONVERTED, FLAGGED = "referral_converted", "referral_flagged"
MAX_PENDING = 64
MAX_RECENT = 16
MAX_INVITEES = 32

Pending = list[str | int | float | bool]


class Referrals(Extension):
    name: ClassVar[str] = "referrals"

    def __init__(self, config: EngageConfig) -> None:
        super().__init__(config)
        c = self.c = config.referrals
        self.qualify_types = set(c.qualify_event_types)
        self.window_ms = int(c.window_days * MS_PER_DAY)
        self.hold_ms = int(c.hold_days * MS_PER_DAY)

    # -- events: the referrer's invite, anyone's first qualifying action ----------------------

    def on_event(self, m: Moment) -> None:
        if not self.c.enabled:
            return
        event, r = m.event, m.state.referral
        assert event is not None
        if r.referrer and not r.qualified and m.state.first_ms < r.invited_ms:
            # the invite reached this partition before the user's own earlier events:
            # an existing user after all, not brought in by the invite
            r.referrer = ""
        if not r.first_qualified and self._qualifying(m):
            r.first_qualified = [m.now_ms, m.state.active_days, m.state.events]
            self._report(m)
        if event.type == "referral":
            target = event.properties.target_user_id if event.properties else None
            if target:
                self._invite(m, target)

    def _qualifying(self, m: Moment) -> bool:
        assert m.event is not None
        if m.event.type in self.qualify_types:
            return True
        need = self.c.qualify_active_days
        return need > 0 and m.state.active_days >= need

    def _report(self, m: Moment) -> None:
        """Tell the referrer, once, if the first qualifying action counts for the invite."""
        r = m.state.referral
        if not r.referrer or r.qualified or not r.first_qualified:
            return
        if m.state.events and m.state.first_ms < r.invited_ms:
            return
        at, active_days, events = r.first_qualified
        if not r.invited_ms <= at <= r.invited_ms + self.window_ms:
            return
        r.qualified = True
        m.send(r.referrer, "converted", qualified_ms=at, active_days=active_days, events=events,
               minutes_after_invite=round((at - r.invited_ms) / MS_PER_MINUTE, 1),
               in_ring=bool(r.ring))

    def _invite(self, m: Moment, target: str) -> None:
        r = m.state.referral
        r.sent += 1
        if target == m.user_id:
            m.count("engage_referral_flags_total", "self_referral")
            evidence = {"reason": "self_referral", "invitee": target}
            m.signals.append(Signal(FLAGGED, f"self@{m.now_ms}", evidence, dict(evidence)))
            return
        if target not in r.invitees:
            r.invitees = [*r.invitees, target][-MAX_INVITEES:]
        m.count("engage_referral_invites_total")
        self._check_ring(m, r.chain)  # the target may be upstream already
        m.send(target, "invite", chain=self._outgoing(m))

    def _outgoing(self, m: Moment) -> list[str]:
        return [m.user_id, *m.state.referral.chain][: self.c.ring_depth]

    # -- messages ------------------------------------------------------------------------------

    def on_message(self, m: Moment) -> None:
        message = m.message
        assert message is not None
        if message.kind == "invite":
            self._invited(m, [str(u) for u in message.body.get("chain", [])])
        elif message.kind == "chain":
            if message.sender == m.state.referral.referrer:
                self._learn_chain(m, [str(u) for u in message.body.get("chain", [])])
        elif message.kind == "ring":
            self._join_ring(m, [int(h) for h in message.body.get("members", [])],
                            sorted(str(u) for u in message.body.get("names", [])))
        elif message.kind == "converted":
            self._converted(m)
        elif message.kind == "retract":  # an earlier invite by someone else won
            r = m.state.referral
            r.pending = [p for p in r.pending if p[0] != message.sender]

    def _invited(self, m: Moment, chain: list[str]) -> None:
        r, state = m.state.referral, m.state
        if not chain:
            return
        self._check_ring(m, chain)
        if state.events and state.first_ms < m.now_ms:
            return  # an existing user: not brought in by this invite
        if r.referrer and (r.invited_ms, r.referrer) <= (m.now_ms, chain[0]):
            return  # an earlier invite wins, whichever arrived first
        if r.referrer and r.qualified:  # told the later inviter already: take it back
            m.send(r.referrer, "retract")
            r.qualified = False
        r.referrer, r.invited_ms = chain[0], m.now_ms
        self._learn_chain(m, chain)
        self._report(m)  # it may have qualified before the invite reached this partition

    def _learn_chain(self, m: Moment, chain: list[str]) -> None:
        r = m.state.referral
        chain = chain[: self.c.ring_depth]
        if chain == r.chain:
            return
        r.chain = chain
        self._check_ring(m, chain)
        for invitee in r.invitees:  # downstream chains were built from the old one
            m.send(invitee, "chain", chain=self._outgoing(m))

    def _check_ring(self, m: Moment, chain: list[str]) -> None:
        """A chain that reaches this user, or one of its invitees, closes a ring."""
        r = m.state.referral
        closing = [u for u in chain if u == m.user_id or u in r.invitees]
        if not closing:
            return
        members = sorted({m.user_id, *chain[: chain.index(closing[0]) + 1]})
        hashes = sorted(short_hash(u) for u in members)
        if set(hashes) <= set(r.ring):
            return  # known already
        self._join_ring(m, hashes, members)
        for member in members:
            if member != m.user_id:
                m.send(member, "ring", members=hashes, names=members)

    def _join_ring(self, m: Moment, hashes: list[int], names: list[str] | None = None) -> None:
        r = m.state.referral
        new = not set(hashes) <= set(r.ring)
        r.ring = sorted(set(r.ring) | set(hashes))
        if new and names and m.user_id == min(names):  # one flag per ring, by one member
            m.count("engage_referral_flags_total", "ring")
            evidence = {"reason": "ring", "members": names}
            m.signals.append(Signal(FLAGGED, f"ring:{','.join(names)}", evidence,
                                    {"reason": "ring", "invitee": m.user_id}))

    def _converted(self, m: Moment) -> None:
        message = m.message
        assert message is not None
        r, b = m.state.referral, message.body
        invitee = message.sender
        if short_hash(invitee) in r.decided or any(p[0] == invitee for p in r.pending):
            return  # told twice (a resent message): decided once
        if len(r.pending) >= MAX_PENDING:
            self._decide(m, r.pending.pop(0), r.pending, list(r.recent))
        r.pending.append([
            invitee, int(b.get("qualified_ms", m.now_ms)), int(b.get("active_days", 0)),
            int(b.get("events", 0)), float(b.get("minutes_after_invite", 0.0)),
            bool(b.get("in_ring", False)), m.watermark_ms,
        ])

    # -- the review period ends --------------------------------------------------------------

    def _due(self, pending: Pending) -> int:
        """The review ends `hold_days` of this partition's event time after the news arrived
        here (or after the invitee qualified, if that is later): time for corrections sent
        from other partitions — an earlier invite's `retract`, a ring — to arrive too."""
        return max(int(pending[1]), int(pending[6])) + self.hold_ms

    def on_sweep(self, m: Moment) -> None:
        r = m.state.referral
        due = [p for p in r.pending if self._due(p) <= m.now_ms]
        if not due:
            return
        everyone = list(r.pending)  # judged together: a farm's or a burst's members are
        history = list(r.recent)
        r.pending = [p for p in r.pending if self._due(p) > m.now_ms]
        for pending in sorted(due, key=lambda p: (int(p[1]), str(p[0]))):
            self._decide(m, pending, everyone, history)

    def next_due_ms(self, state: UserState) -> int | None:
        pending = state.referral.pending
        return min(self._due(p) for p in pending) if pending else None

    def _thin(self, pending: Pending) -> bool:
        """An invitee with no independent activity: hardly anything but the qualifying act."""
        c = self.c
        return int(pending[2]) <= c.thin_max_active_days and int(pending[3]) <= c.thin_max_events

    def _decide(
        self, m: Moment, pending: Pending, together: list[Pending], history: list[int]
    ) -> None:
        """Credit or flag one conversion, judged with the others held at the same time."""
        c, r = self.c, m.state.referral
        invitee, qualified_ms, active_days, events, minutes, in_ring, _arrived = pending
        invitee, qualified_ms = str(invitee), int(qualified_ms)
        r.decided = [*r.decided, short_hash(invitee)][-256:]
        thin = self._thin(pending)
        thin_seen = r.thin + sum(self._thin(p) for p in together if p is not pending) + thin
        r.thin += thin
        window = int(c.burst_minutes * MS_PER_MINUTE)
        earlier = [*history, *(int(p[1]) for p in together if p is not pending)]
        in_burst = 1 + sum(qualified_ms - window < t <= qualified_ms for t in earlier)
        r.recent = sorted({*r.recent, qualified_ms})[-MAX_RECENT:]
        evidence = {"invitee": invitee, "invitee_active_days": int(active_days),
                    "invitee_events": int(events), "minutes_after_invite": float(minutes)}
        reason = None
        if bool(in_ring) or short_hash(invitee) in r.ring:
            reason = "ring"
        elif thin:  # never credited: whether the referrer looks like a farm is the evidence
            reason = "farm" if thin_seen >= c.farm_min_thin else "thin"
        elif in_burst >= c.burst_count:
            reason = "burst"
        if reason is not None:
            r.flagged += 1
            m.count("engage_referral_flags_total", reason)
            m.signals.append(Signal(FLAGGED, f"withheld:{invitee}", {
                "reason": reason, **evidence, "thin_invitees": thin_seen,
                "conversions_in_burst_window": in_burst,
            }, {"reason": reason, "invitee": invitee}))
            return
        r.credited += 1
        m.count("engage_referral_conversions_total")
        m.signals.append(Signal(CONVERTED, invitee, evidence, {
            "invitee": invitee, "referrals_credited": r.credited,
        }))


__all__ = ["CONVERTED", "FLAGGED", "ReferralState", "Referrals"]
