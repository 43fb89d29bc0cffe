"""Loyalty tiers with hysteresis: promote at once, demote only after a grace period.

A user in tier T is demoted only when the score has stayed below `line(T) - demotion_margin`
for `demotion_grace_days`; dipping under the line without crossing the margin, or recovering
within the grace period, keeps the tier. A tier's line is its `min_score` on the absolute
score; on the population-calibrated score (a percentile) it is drawn each day so that the
tier holds its `top_share` of active users (scoring.calibration.Calibration.tier_lines).

Every score record says why the user has their tier (`reason`): earned, held within the
margin, held by grace until a given time, or waiting for the next update.
"""

from __future__ import annotations

from collections.abc import Sequence

from scoring.config import EngageConfig
from scoring.records import TierReason
from scoring.state import UserState
from scoring.timeutil import format_rfc3339_ms


class TierPolicy:
    """Tiers by rank (0 = the lowest) while computing; stored by name in the user's state
    (`""` for the lowest), so a tier added to the list never shifts anyone's tier."""

    def __init__(self, config: EngageConfig) -> None:
        levels = config.tiers.levels
        self.names = [lv.name for lv in levels]
        self.stored = ["", *self.names[1:]]
        self.ranks = {name: i for i, name in enumerate(self.names)}
        self.ranks[""] = 0
        self.absolute_lines = [lv.min_score for lv in levels]
        self.target_lines = [
            0.0 if lv.top_share is None else round(100.0 * (1.0 - lv.top_share), 6)
            for lv in levels
        ]
        self.margin = config.tiers.demotion_margin
        self.grace_ms = int(config.tiers.demotion_grace_days * 86_400_000)
        self._floors: tuple[Sequence[float], list[float]] | None = None  # last lines, floors

    def rank(self, state: UserState) -> int:
        """The user's tier rank; a tier no longer configured counts as the lowest."""
        return self.ranks.get(state.tier, 0)

    def name(self, state: UserState) -> str:
        return self.names[self.rank(state)]

    @staticmethod
    def plain_tier(score: float, lines: Sequence[float]) -> int:
        tier = 0
        for i, line in enumerate(lines):
            if score >= line:
                tier = i
        return tier

    def update(
        self, state: UserState, score: float, now_ms: int, lines: Sequence[float] | None = None
    ) -> int:
        """Move `state.tier` for a score seen at `now_ms`, against the tiers' `lines` (the
        absolute `min_score`s by default); returns the previous tier's rank."""
        lines = self.absolute_lines if lines is None else lines
        previous = self.rank(state)
        target = self.plain_tier(score, lines)
        if target >= previous:
            state.tier = self.stored[target]
            state.below_since_ms = 0
            return previous
        floors = self.floors(lines)
        if score >= floors[previous]:
            state.below_since_ms = 0  # under the line but within the margin: hold
            return previous
        if state.below_since_ms == 0 or state.below_since_ms > now_ms:
            state.below_since_ms = now_ms
        if now_ms - state.below_since_ms >= self.grace_ms:
            keep = target
            for i in range(previous - 1, target, -1):
                if score >= floors[i]:
                    keep = i
                    break
            state.tier = self.stored[keep]
            state.below_since_ms = 0
        return previous

    def floors(self, lines: Sequence[float]) -> list[float]:
        """Each tier's demotion line: its line less the margin. A population line drawn
        above the tier's target line `100 * (1 - top_share)` (the tier is full and admits
        fewer newcomers) still demotes from the target line less the margin: raising the
        bar for newcomers must not push out members who hold their share."""
        cached = self._floors
        if cached is not None and cached[0] is lines:  # one set of lines serves a whole day
            return cached[1]
        if lines is self.absolute_lines:
            floors = [line - self.margin for line in lines]
        else:
            floors = [min(line, target) - self.margin
                      for line, target in zip(lines, self.target_lines, strict=True)]
        self._floors = (lines, floors)
        return floors

    def next_due_ms(self, state: UserState) -> int | None:
        """When a pending demotion's grace period ends."""
        return state.below_since_ms + self.grace_ms if state.below_since_ms else None

    def reason(
        self, state: UserState, score: float, lines: Sequence[float] | None = None
    ) -> TierReason:
        """Why the user has their tier, with the score `score` of the record."""
        lines = self.absolute_lines if lines is None else lines
        tier = self.rank(state)
        name, line = self.names[tier], lines[tier]
        plain = self.plain_tier(score, lines)
        if tier == plain:
            text = (f"the lowest tier: the score {score:.1f} is under "
                    f"{self.names[1]}'s line {lines[1]:g}" if tier == 0 and len(lines) > 1
                    else f"earned: the score {score:.1f} is at or above {name}'s line {line:g}")
            return TierReason(code="earned", text=text, line=line)
        if tier < plain:
            return TierReason(
                code="promotion_pending", line=line,
                text=f"the score {score:.1f} earns {self.names[plain]}; the tier moves at the "
                "user's next event or daily update",
            )
        floor = self.floors(lines)[tier]
        if state.below_since_ms:
            until = state.below_since_ms + self.grace_ms
            return TierReason(
                code="held_by_grace", line=line, grace_until=format_rfc3339_ms(until),
                text=f"held by grace until {format_rfc3339_ms(until)}: the score has been under "
                f"{name}'s line {line:g} less the margin {self.margin:g} since "
                f"{format_rfc3339_ms(state.below_since_ms)}; back above {floor:g} keeps {name}",
            )
        if score >= floor:
            return TierReason(
                code="held_within_margin", line=line,
                text=f"held: the score {score:.1f} is under {name}'s line {line:g} but within "
                f"the demotion margin {self.margin:g} (held while at or above {floor:g})",
            )
        return TierReason(
            code="review_pending", line=line,
            text=f"the score {score:.1f} fell under {name}'s line {line:g} less the margin "
            f"{self.margin:g} since the tier was last judged; the grace period of "
            f"{self.grace_ms / 86_400_000:g} days starts at the next update",
        )
