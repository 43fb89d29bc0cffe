"""Rewrite the generated parts of the docs from the registries:
`python -m streams.docgen` (or `--check`, which exits 1 when they are out of date)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scoring.config import load_config
from scoring.triggers.catalog import replace_between_markers, types_table
from scoring.triggers.registry import rules

TRIGGERS_DOC = Path(__file__).resolve().parents[1] / "docs" / "triggers.md"


def rendered() -> str:
    config = load_config(None)
    text = TRIGGERS_DOC.read_text()
    return replace_between_markers(text, types_table(rules(()), config))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if stale")
    args = parser.parse_args(argv)
    new = rendered()
    if args.check:
        if new != TRIGGERS_DOC.read_text():
            print(f"{TRIGGERS_DOC} is out of date: run python -m streams.docgen", file=sys.stderr)
            return 1
        return 0
    TRIGGERS_DOC.write_text(new)
    print(f"wrote {TRIGGERS_DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
