"""HTTP views on the worker: user lookup (routed to the partition's owner) and a leaderboard."""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, Any

from faust.web import Request, Response, View

from streams.processor import partition_for_user

if TYPE_CHECKING:
    from streams.app import EngageWorker


def register_views(worker: EngageWorker) -> None:
    app, shell = worker.app, worker.shell

    def as_of_for(user_id: str, last_event_ms: int) -> int:
        clock = shell.clocks.get(partition_for_user(user_id, shell.partitions))
        newest = clock.max_event_ms if clock is not None and clock.max_event_ms else 0
        return max(newest, last_event_ms)

    def user_view(user_id: str) -> dict[str, Any] | None:
        state = shell.store.load(user_id)
        if state is None:
            return None
        as_of = as_of_for(user_id, state.last_event_ms)
        record = worker.engine.score_record(
            state, user_id, as_of, worker.churn.predict_state(state, as_of)
        )
        record["recent_triggers"] = shell.recent_triggers.get(user_id, [])
        return record

    @app.page("/users/{user_id}/")
    @app.table_route(table=worker.table, match_info="user_id")
    async def get_user(web: View, request: Request, user_id: str) -> Response:
        record = user_view(user_id)
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
            as_of = as_of_for(user_id, state.last_event_ms)
            rows.append(worker.engine.score_record(state, user_id, as_of, None))
        top = heapq.nlargest(n, rows, key=lambda r: r["engagement_score"])
        return web.json({"top": top, "users_considered": len(rows)})

    @app.page("/healthz/")
    async def health(web: View, request: Request) -> Response:
        return web.json({"status": "ok", "partitions": sorted(shell.clocks)})
