"""Live outcome of every trigger type's holdout experiment (an engine extension).

Intent to treat: a user enters a type's experiment with the first trigger of that type they
are given, in the variant it assigned (treatment, or control for the holdout), whatever
happens next; they convert when an outcome event (`experiments.outcome_event_types`, or any
counted event) comes within `experiments.window_days` after that trigger. Both are counted
(`engage_experiment_users_total`, `engage_experiment_conversions_total`, by type and
variant), so a dashboard shows each type's conversion rate per variant and their
difference; `engage uplift` computes the same offline, with intervals (docs/growth.md).
"""

from __future__ import annotations

from typing import ClassVar

from scoring.config import EngageConfig
from scoring.extensions import Extension, Moment
from scoring.records import Trigger
from scoring.timeutil import MS_PER_DAY
from scoring.triggers.registry import rule_for

TREATMENT, CONTROL = 1, 0


class Experiments(Extension):
    name: ClassVar[str] = "experiments"

    def __init__(self, config: EngageConfig) -> None:
        super().__init__(config)
        c = config.experiments
        self.window_ms = int(c.window_days * MS_PER_DAY)
        self.outcome_types = set(c.outcome_event_types)
        self.codes = {t: rule_for(t).code for t in config.triggers.types()}
        self.types = {code: t for t, code in self.codes.items()}

    def on_triggers(self, m: Moment, triggers: list[Trigger]) -> None:
        entered = m.state.experiments
        for t in triggers:
            code = self.codes.get(t.type)
            if code is None or code in entered:
                continue  # one entry per type: the first trigger decides the group
            variant = TREATMENT if t.variant == "treatment" else CONTROL
            entered[code] = [m.now_ms, variant, 0]
            m.count("engage_experiment_users_total", t.type, t.variant)

    def on_event(self, m: Moment) -> None:
        entered = m.state.experiments
        if not entered:
            return
        event = m.event
        assert event is not None
        if self.outcome_types and event.type not in self.outcome_types:
            return
        for code, entry in entered.items():
            at, variant, converted = entry
            if not converted and at < m.now_ms <= at + self.window_ms:
                entry[2] = 1
                m.count("engage_experiment_conversions_total", self.types.get(code, str(code)),
                        "treatment" if variant == TREATMENT else "control")
