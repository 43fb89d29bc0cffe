"""HTTP views on the worker: user lookup (routed to the partition's owner), a leaderboard,
and the health checks.

`GET /users/{id}/[?as_of=T]` answers from the worker that owns the user's partition (Faust's
table_route forwards the request there: the table's keys are the raw user ids, so Faust
hashes them as Kafka's partitioner placed the user); scores are evaluated at the
partition's current event time, or at `as_of` (RFC 3339 or epoch ms) when given. While the
owner is taking the partition over (a rebalance, its table's recovery) it answers 503 with
`Retry-After`, not 404: the user may well exist.

`GET /healthz/`: the process answers (liveness). `GET /readyz/`: 200 when tables are
recovered, partitions assigned, outputs flowing and no input stalled; 503 with the failing
checks otherwise (docs/operations.md).
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, Any

import msgspec
from faust.web import Request, Response, View

from scoring.due_index import PartitionClock
from scoring.leaderboards import MEASURES, PERIODS
from scoring.partition_state import PartitionShared
from scoring.partitioning import partition_for_user
from scoring.timeutil import parse_rfc3339_ms

if TYPE_CHECKING:
    from streams.app import EngageWorker


MAX_AS_OF_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


def parse_as_of(text: str | None) -> int | None:
    """`as_of` as epoch ms; ValueError for anything that is not a time between 1970 and 9999."""
    if not text:
        return None
    if text.isdigit():
        if len(text) > 15 or int(text) > MAX_AS_OF_MS:
            raise ValueError("as_of is after the year 9999")
        return int(text)
    try:
        return parse_rfc3339_ms(text)
    except (OverflowError, OSError) as exc:
        raise ValueError(str(exc)) from None


def register_views(worker: EngageWorker) -> None:
    app, shell = worker.app, worker.shell

    def partition_now(user_id: str, last_ms: int) -> int:
        """The user's partition's event time (its clock, loaded or as stored)."""
        partition = partition_for_user(user_id, shell.partitions)
        clock: PartitionClock | None = shell.driver.clocks.get(partition)
        newest = clock.max_event_ms if clock is not None else None
        if newest is None:
            stored = worker.store.load_partition(partition)
            newest = stored.max_event_ms if stored is not None else None
        return max(newest or 0, last_ms)

    def population_of(user_id: str) -> PartitionShared:
        """The user's partition's population reference (as stored, if not yet taken over)."""
        partition = partition_for_user(user_id, shell.partitions)
        clock: PartitionClock | None = shell.driver.clocks.get(partition)
        if clock is not None:
            return clock.shared
        return worker.engine.partition_shared(
            partition, worker.store.load_partition(partition), shell.driver.exchange
        )

    def user_view(user_id: str, as_of: int | None) -> dict[str, Any] | None:
        state = shell.store.load(user_id)
        if state is None:
            return None
        when = as_of if as_of is not None else partition_now(user_id, state.last_ms)
        record: dict[str, Any] = msgspec.to_builtins(
            worker.engine.score_record(state, user_id, when, shared=population_of(user_id))
        )
        record["recent_triggers"] = msgspec.to_builtins(shell.recent_triggers.get(user_id, []))
        return record

    @app.page("/users/{user_id}/")
    @app.table_route(table=worker.table, match_info="user_id")
    async def get_user(web: View, request: Request, user_id: str) -> Response:
        try:
            as_of = parse_as_of(request.query.get("as_of"))
        except ValueError:
            return web.json({"error": "as_of must be RFC 3339 with an offset, or epoch ms"},
                            status=400)
        partition = partition_for_user(user_id, shell.partitions)
        if not worker.serves(partition):
            return web.json(
                {"error": f"partition {partition} of user {user_id!r} is being taken over "
                          "(rebalance or recovery); retry", "partition": partition},
                status=503, headers={"Retry-After": "1"})
        record = user_view(user_id, as_of)
        if record is None:
            return web.json({"error": f"unknown user {user_id!r}"}, status=404)
        return web.json(record)

    @app.page("/leaderboards/{period}/")
    async def leaderboards(web: View, request: Request, period: str) -> Response:
        """The cluster's top users by points earned this week, this month or all time,
        composite or one dimension (`?by=social`), from every partition's boards."""
        measure = request.query.get("by", "composite")
        if period not in PERIODS or measure not in MEASURES:
            return web.json({"error": f"period must be one of {list(PERIODS)} and by one of "
                                      f"{list(MEASURES)}"}, status=400)
        try:
            n = max(1, min(worker.config.leaderboards.size, int(request.query.get("n", "10"))))
        except ValueError:
            return web.json({"error": "n must be a whole number"}, status=400)
        label, top = worker.leaderboards.top(period, measure, n)
        return web.json({
            "period": period, "period_start": label, "by": measure,
            "partitions": sorted(worker.leaderboards.boards),
            "top": [{"rank": i + 1, "user_id": u, "points": v} for i, (u, v) in enumerate(top)],
        })

    @app.page("/leaderboard/")
    async def leaderboard(web: View, request: Request) -> Response:
        """Top-N by engagement score among the users this worker holds (one scan per call)."""
        try:
            n = max(1, min(1000, int(request.query.get("n", "10"))))
        except ValueError:
            return web.json({"error": "n must be a whole number"}, status=400)
        rows = []
        for user_id, state in worker.store.all_users():
            when = partition_now(user_id, state.last_ms)
            standing = worker.engine.standing(state, when, population_of(user_id))
            rows.append((standing.score, user_id, state))
        top = heapq.nlargest(n, rows, key=lambda r: r[0])
        return web.json({
            "top": [
                {"user_id": u, "engagement_score": round(s, 4),
                 "tier": worker.engine.tiers.name(st)}
                for s, u, st in top
            ],
            "users_considered": len(rows),
        })

    @app.page("/healthz/")
    async def health(web: View, request: Request) -> Response:
        return web.json({"status": "ok"})

    @app.page("/readyz/")
    async def ready(web: View, request: Request) -> Response:
        is_ready, checks = worker.readiness()
        worker.metrics.ready.set(1 if is_ready else 0)
        return web.json(
            {"status": "ready" if is_ready else "not_ready", "checks": checks},
            status=200 if is_ready else 503,
        )
