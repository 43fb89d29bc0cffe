"""HTTP views on the worker: user lookup (routed to the partition's owner) and a leaderboard.

`GET /users/{id}/[?as_of=T]` answers from the worker that owns the user's partition (Faust's
table_route forwards the request there); scores are evaluated at the partition's current
event time, or at `as_of` (RFC 3339 or epoch ms) when given.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, Any

from faust.web import Request, Response, View

from scoring.due_index import PartitionClock
from scoring.partitioning import partition_for_user
from scoring.timeutil import parse_rfc3339_ms

if TYPE_CHECKING:
    from streams.app import EngageWorker


def parse_as_of(text: str | None) -> int | None:
    if not text:
        return None
    return int(text) if text.isdigit() else parse_rfc3339_ms(text)


def register_views(worker: EngageWorker) -> None:
    app, shell = worker.app, worker.shell

    def partition_now(user_id: str, last_ms: int) -> int:
        clock: PartitionClock | None = shell.driver.clocks.get(
            partition_for_user(user_id, shell.partitions)
        )
        if clock is None:
            return last_ms
        return max(clock.max_event_ms or 0, clock.recovered_ms, last_ms)

    def user_view(user_id: str, as_of: int | None) -> dict[str, Any] | None:
        state = shell.store.load(user_id)
        if state is None:
            return None
        when = as_of if as_of is not None else partition_now(user_id, state.last_ms)
        record = worker.engine.score_record(state, user_id, when)
        record["recent_triggers"] = shell.recent_triggers.get(user_id, [])
        return record

    @app.page("/users/{user_id}/")
    @app.table_route(table=worker.table, match_info="user_id")
    async def get_user(web: View, request: Request, user_id: str) -> Response:
        try:
            as_of = parse_as_of(request.query.get("as_of"))
        except ValueError:
            return web.json({"error": "as_of must be RFC 3339 with an offset, or epoch ms"},
                            status=400)
        record = user_view(user_id, as_of)
        if record is None:
            return web.json({"error": f"unknown user {user_id!r}"}, status=404)
        return web.json(record)

    @app.page("/leaderboard/")
    async def leaderboard(web: View, request: Request) -> Response:
        """Top-N by composite score among the users this worker holds (one scan per call)."""
        try:
            n = max(1, min(1000, int(request.query.get("n", "10"))))
        except ValueError:
            return web.json({"error": "n must be a whole number"}, status=400)
        rows = []
        for user_id, state in shell.store.items():
            when = partition_now(user_id, state.last_ms)
            view = worker.engine.view(state, when)
            rows.append((view.engagement_score, user_id, state))
        top = heapq.nlargest(n, rows, key=lambda r: r[0])
        return web.json({
            "top": [
                {"user_id": u, "engagement_score": round(s, 4),
                 "tier": worker.engine.tiers.names[st.tier]}
                for s, u, st in top
            ],
            "users_considered": len(rows),
        })

    @app.page("/healthz/")
    async def health(web: View, request: Request) -> Response:
        return web.json({"status": "ok", "partitions": sorted(shell.driver.clocks)})
