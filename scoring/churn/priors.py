"""The population models' parameters of the day: BG/NBD and MBG/NBD, fitted together.

Both are fitted by maximum likelihood on the same customer summaries (the trainer's customer
sample, scoring.churn.customer_sample), travel together with each model version (artifact
metadata keys `bgnbd` and `mbgnbd`) and give the lifetime features their BG/NBD and MBG/NBD
terms (scoring.churn.lifetime). MBG/NBD is optional so that a fit that fails for it alone
still leaves BG/NBD in use (its features are then 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scoring.churn.bgnbd import BgNbdParams
from scoring.churn.mbgnbd import MbgNbdParams


@dataclass(frozen=True, slots=True)
class PopulationParams:
    bgnbd: BgNbdParams
    mbgnbd: MbgNbdParams | None = None


def _as_dict(p: BgNbdParams | MbgNbdParams | None) -> dict[str, float] | None:
    if p is None:
        return None
    return {"r": p.r, "alpha": p.alpha, "a": p.a, "b": p.b}


def params_as_meta(params: PopulationParams | None) -> dict[str, dict[str, float] | None]:
    """{"bgnbd": {r, alpha, a, b} | None, "mbgnbd": ... | None}: merged into artifact metadata."""
    if params is None:
        return {"bgnbd": None, "mbgnbd": None}
    return {"bgnbd": _as_dict(params.bgnbd), "mbgnbd": _as_dict(params.mbgnbd)}


def _four(raw: Any) -> tuple[float, float, float, float] | None:
    if not isinstance(raw, dict):
        return None
    try:
        return float(raw["r"]), float(raw["alpha"]), float(raw["a"]), float(raw["b"])
    except (KeyError, TypeError, ValueError):
        return None


def params_from_meta(meta: Mapping[str, Any]) -> PopulationParams | None:
    """The parameters an artifact carries (None without a valid BG/NBD set)."""
    bg, mbg = _four(meta.get("bgnbd")), _four(meta.get("mbgnbd"))
    try:
        if bg is None:
            return None
        return PopulationParams(BgNbdParams(*bg), MbgNbdParams(*mbg) if mbg else None)
    except ValueError:
        return None
