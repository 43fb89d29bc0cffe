"""Named churn model specs: built-ins, dotted paths and an entry-point group.

A model is any river binary classifier (`predict_proba_one`, `learn_one`) over the feature
dict of scoring.churn.layout.FEATURE_NAMES (lifetime features over return events, with
BG/NBD's); `learn_one` may take a sample weight `w`. Data scientists plug theirs in as
`package.module:factory` (a zero-argument callable returning the pipeline) or by declaring
an entry point in the `engage.models` group of their own package.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

ENTRY_POINT_GROUP = "engage.models"


def logreg() -> Any:
    """Standard-scaled river logistic regression over every feature (no prior)."""
    from river import linear_model, optim, preprocessing

    return preprocessing.StandardScaler() | linear_model.LogisticRegression(
        optimizer=optim.SGD(0.02), l2=1e-4
    )


def hoeffding() -> Any:
    """River's Hoeffding adaptive tree: non-linear, adapts to drift."""
    from river import preprocessing, tree

    return preprocessing.StandardScaler() | tree.HoeffdingAdaptiveTreeClassifier(
        grace_period=100, leaf_prediction="nba", seed=7
    )


def forest() -> Any:
    """A small adaptive random forest (5 trees): stronger, slower."""
    from river import forest as river_forest

    return river_forest.ARFClassifier(n_models=5, seed=7)


def lifetime() -> Any:
    """MBG/NBD's churn log-odds as a prior, corrections learned online: the default champion."""
    from scoring.churn.lifetime_model import lifetime_offset_logreg

    return lifetime_offset_logreg()


def bgnbd() -> Any:
    """BG/NBD alone, refitted from the customers' summaries (learns no labels): a baseline."""
    from scoring.churn.lifetime_model import bgnbd_churn

    return bgnbd_churn()


def mbgnbd() -> Any:
    """MBG/NBD alone (BG/NBD with dropout after the first purchase too; learns no labels)."""
    from scoring.churn.lifetime_model import mbgnbd_churn

    return mbgnbd_churn()


BUILTINS: dict[str, Callable[[], Any]] = {
    "logreg": logreg,
    "hoeffding": hoeffding,
    "forest": forest,
    "lifetime": lifetime,
    "bgnbd": bgnbd,
    "mbgnbd": mbgnbd,
}


def _entry_point(name: str) -> Callable[[], Any] | None:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            factory: Callable[[], Any] = ep.load()
            return factory
    return None


def resolve(name: str) -> Callable[[], Any]:
    """The factory for a model name; raises KeyError with a helpful message."""
    if name in BUILTINS:
        return BUILTINS[name]
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            factory: Callable[[], Any] = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError, ValueError) as exc:
            raise KeyError(f"model {name!r}: cannot import ({exc})") from None
        return factory
    found = _entry_point(name)
    if found is None:
        raise KeyError(
            f"unknown model {name!r}: use one of {sorted(BUILTINS)}, a `module:factory` path, "
            f"or an entry point in the {ENTRY_POINT_GROUP!r} group"
        )
    return found


def known_model(name: str) -> bool:
    try:
        resolve(name)
    except KeyError:
        return False
    return True


def build_model(name: str) -> Any:
    model = resolve(name)()
    for method in ("predict_proba_one", "learn_one"):
        if not callable(getattr(model, method, None)):
            raise TypeError(f"model {name!r} has no {method}(); it must be a river classifier")
    return model


def list_models() -> list[tuple[str, str]]:
    """(name, one-line description) of the built-ins and installed entry points."""
    rows = [(n, (f.__doc__ or "").strip().splitlines()[0]) for n, f in BUILTINS.items()]
    rows += [(ep.name, f"entry point {ep.value}") for ep in entry_points(group=ENTRY_POINT_GROUP)]
    return rows
