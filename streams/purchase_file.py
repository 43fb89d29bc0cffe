"""Purchase tables in the CDNOW layout, as engage events.

The BTYD literature's transaction files (`CDNOW_sample.txt` and `CDNOW_master.txt`, shipped
by the `lifetimes` and `btyd` packages) are whitespace-separated columns: customer, date
YYYYMMDD, quantity, amount — the sample has a master id in front (five columns; the sample id,
the second column, names the customer). `engage backtest` reads them directly so that a
published history needs no conversion script; each row becomes a `purchase` event at noon
UTC of its day, rows in time order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from scoring.timeutil import MS_PER_DAY, format_rfc3339_ms

NOON_MS = 12 * 3_600_000


class PurchaseFileError(ValueError):
    """A line that is not a purchase row."""


@dataclass(frozen=True, slots=True)
class Purchase:
    customer: str
    day: date
    quantity: int
    amount: float


def parse_purchase_line(line: str, where: str) -> Purchase | None:
    """One row; None for a blank line or a header (first column not a number)."""
    cols = line.split()
    if not cols or not cols[0].isdigit():
        return None
    if len(cols) not in (4, 5):
        raise PurchaseFileError(f"{where}: expected 4 or 5 columns, got {line.strip()!r}")
    customer, stamp, quantity, amount = cols[-4:] if len(cols) == 4 else cols[1:]
    try:
        if len(stamp) != 8:
            raise ValueError(stamp)
        day = date(int(stamp[:4]), int(stamp[4:6]), int(stamp[6:8]))
        return Purchase(customer, day, int(quantity), float(amount))
    except ValueError:
        raise PurchaseFileError(
            f"{where}: expected customer, date YYYYMMDD, quantity, amount; got {line.strip()!r}"
        ) from None


def read_purchases(path: str | Path) -> list[Purchase]:
    """Rows of a purchase table, in file order."""
    rows = []
    with open(path, encoding="utf-8", errors="strict") as fh:
        for number, line in enumerate(fh, 1):
            row = parse_purchase_line(line, f"{path}:{number}")
            if row is not None:
                rows.append(row)
    return rows


def purchase_events(purchases: Sequence[Purchase]) -> Iterator[dict[str, Any]]:
    """`purchase` events (contract v1) at noon UTC of each day, in time order (file order
    within a day); every row is its own event, named by its row number."""
    ordered = sorted(range(len(purchases)), key=lambda i: (purchases[i].day, i))
    epoch = date(1970, 1, 1)
    for i in ordered:
        p = purchases[i]
        ts = (p.day - epoch).days * MS_PER_DAY + NOON_MS
        yield {
            "event_id": f"purchase-{i}", "user_id": p.customer, "type": "purchase",
            "ts": format_rfc3339_ms(ts),
            "properties": {"amount": p.amount, "quantity": p.quantity},
        }
