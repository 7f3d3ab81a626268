"""The metrics summary: how many failures, how they ended, how fast, at what cost.

Computed from the ``failures`` view at request time; the numbers are aggregates over
at most one row per failure, so this stays cheap long after the audit log grows large.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from medic.db import Conn

_TOTALS = """
SELECT count(*) AS total,
       count(*) FILTER (WHERE state = 'remediated') AS remediated,
       count(*) FILTER (WHERE state = 'remediation_failed') AS remediation_failed,
       avg(extract(epoch FROM settled_at - detected_at)) FILTER (WHERE state = 'remediated') AS avg_res,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM settled_at - detected_at))
           FILTER (WHERE state = 'remediated') AS p50_res,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM settled_at - detected_at))
           FILTER (WHERE state = 'remediated') AS p90_res,
       avg(extract(epoch FROM approval_decided_at - approval_requested_at))
           FILTER (WHERE approval_outcome IN ('granted', 'rejected')) AS approval_wait,
       count(*) FILTER (WHERE method = 'model') AS model_calls,
       count(*) FILTER (WHERE method = 'cache') AS cache_hits,
       count(*) FILTER (WHERE method = 'rules') AS rule_matches,
       count(*) FILTER (WHERE approval_outcome = 'granted') AS granted,
       count(*) FILTER (WHERE approval_outcome = 'rejected') AS rejected,
       count(*) FILTER (WHERE approval_outcome = 'expired') AS expired
FROM failures
"""

_BY_REPOSITORY = """
SELECT coalesce(repository, '(unknown)') AS repository, count(*) AS total,
       count(*) FILTER (WHERE state = 'remediated') AS remediated,
       count(*) FILTER (WHERE state = 'remediation_failed') AS remediation_failed,
       count(*) FILTER (WHERE state IN ('awaiting_approval', 'remediating', 'detected', 'analyzed')) AS open
FROM failures GROUP BY 1 ORDER BY 1
"""

_TIMESERIES = """
SELECT date_trunc('hour', settled_at) AS hour, state, count(*) AS n
FROM failures
WHERE settled_at IS NOT NULL AND settled_at >= now() - make_interval(hours => $1)
GROUP BY 1, 2 ORDER BY 1, 2
"""


async def _counts(conn: Conn, column: str) -> dict[str, int]:
    rows = await conn.fetch(
        f"SELECT {column}::text AS key, count(*) AS n FROM failures"  # noqa: S608 - column is a fixed name
        f" WHERE {column} IS NOT NULL GROUP BY 1 ORDER BY 1"
    )
    return {str(r["key"]): int(r["n"]) for r in rows}


def _seconds(value: Any) -> float | None:
    return None if value is None else round(float(value), 3)


async def metrics_summary(pool: asyncpg.Pool, *, hours: int = 48) -> dict[str, Any]:
    """The summary served at ``/api/metrics/summary``; one consistent snapshot."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        t = await conn.fetchrow(_TOTALS)
        assert t is not None  # an aggregate without GROUP BY always returns one row
        finished = int(t["remediated"]) + int(t["remediation_failed"])
        series: dict[str, dict[str, int]] = {}
        for r in await conn.fetch(_TIMESERIES, hours):
            series.setdefault(r["hour"].isoformat(), {})[r["state"]] = int(r["n"])
        return {
            "total_failures": int(t["total"]),
            "by_state": await _counts(conn, "state"),
            "success_rate": round(int(t["remediated"]) / finished, 4) if finished else None,
            "avg_resolution_seconds": _seconds(t["avg_res"]),
            "p50_resolution_seconds": _seconds(t["p50_res"]),
            "p90_resolution_seconds": _seconds(t["p90_res"]),
            "by_category": await _counts(conn, "category"),
            "by_risk": await _counts(conn, "risk"),
            "by_method": await _counts(conn, "method"),
            "by_repository": {
                r["repository"]: {k: int(v) for k, v in dict(r).items() if k != "repository"}
                for r in await conn.fetch(_BY_REPOSITORY)
            },
            "model_calls": int(t["model_calls"]),
            "cache_hits": int(t["cache_hits"]),
            "rule_matches": int(t["rule_matches"]),
            "approvals": {
                "granted": int(t["granted"]),
                "rejected": int(t["rejected"]),
                "expired": int(t["expired"]),
            },
            "mean_approval_wait_seconds": _seconds(t["approval_wait"]),
            "hourly_outcomes": [{"hour": hour, "counts": counts} for hour, counts in series.items()],
        }
