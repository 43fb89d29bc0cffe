"""Per-user referral bookkeeping kept inside UserState (see scoring/referrals.py)."""

from __future__ import annotations

import hashlib

import msgspec


def short_hash(user_id: str) -> int:
    """A 48-bit id of a user, for the sets a state keeps (rings, credited invitees)."""
    return int.from_bytes(hashlib.blake2b(user_id.encode(), digest_size=6).digest(), "big")


class ReferralState(
    msgspec.Struct,
    kw_only=True,
    omit_defaults=True,
    tag_field="v",
    tag=1,
    rename={
        "referrer": "r", "invited_ms": "i", "chain": "ch", "qualified": "q", "ring": "rg",
        "sent": "s", "pending": "p", "credited": "c", "flagged": "f", "thin": "t",
        "recent": "rc", "decided": "d", "invitees": "iv", "first_qualified": "fq",
    },
):
    """One user's referral story, as invitee (first fields) and as referrer (the rest)."""

    referrer: str = ""  # who invited this user ("": nobody, or an ignored invite)
    invited_ms: int = 0
    chain: list[str] = msgspec.field(default_factory=list)  # referrer, its inviter...: nearest 1st
    qualified: bool = False  # this user's conversion was reported to the referrer
    # this user's first qualifying action, invite or not: [ms, active_days, events] then
    first_qualified: list[int] = msgspec.field(default_factory=list)
    ring: list[int] = msgspec.field(default_factory=list)  # short_hash of ring members known
    sent: int = 0  # invites sent, lifetime
    invitees: list[str] = msgspec.field(default_factory=list)  # the latest invited (ring checks)
    # [invitee, qualified_ms, active_days, events, minutes_after_invite, in_ring, arrived_ms]
    pending: list[list[str | int | float | bool]] = msgspec.field(default_factory=list)
    credited: int = 0  # conversions credited, lifetime
    flagged: int = 0  # conversions withheld as suspicious, lifetime
    thin: int = 0  # invitees with no independent activity, lifetime
    recent: list[int] = msgspec.field(default_factory=list)  # times of the latest conversions
    decided: list[int] = msgspec.field(default_factory=list)  # short_hash of invitees decided
