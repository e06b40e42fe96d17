"""Leases in PostgreSQL: how several replicas of one process share work without doing any piece twice.

A lease is a row (console.models.Lease) naming a piece of work, the process holding it and when that ends. A holder
renews it well before it ends; a holder that dies (SIGKILL, a lost node) simply stops renewing, and after one lease
period anyone may take it. Every decision is one statement that compares with the database's own `now()`, so two
processes can never both succeed in taking the same free lease, and the pods' clocks do not matter.

    me = leases.holder_id()
    if leases.acquire("beat", me, ttl=30):   # every 10 s: the one that gets True is the active one
        ...

What a lease cannot do is stop a holder that stalls past its lease (a long pause) from finishing what it had begun:
work done under a lease must still be idempotent (dead letters dedupe on their broker position, Celery jobs guard
themselves), the lease only keeps that from being the normal case.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterable

from django.db import connection

TABLE = "console_lease"


_holder: tuple[int, str] | None = None


def holder_id() -> str:
    """This process (the same answer all its life, a new one in a forked child), never reused: a restarted process
    with the same pid must not inherit its predecessor's leases."""
    global _holder
    if _holder is None or _holder[0] != os.getpid():
        _holder = (os.getpid(), f"{socket.gethostname()[:100]}:{os.getpid()}:{secrets.token_hex(4)}")
    return _holder[1]


def acquire(name: str, holder: str, ttl: float) -> bool:
    """Take `name` if it is free or expired, or renew it if `holder` has it; True if `holder` holds it now."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {TABLE} AS l (name, holder, expires_at, acquired_at)
            VALUES (%s, %s, now() + make_interval(secs => %s), now())
            ON CONFLICT (name) DO UPDATE SET
                holder = EXCLUDED.holder,
                expires_at = EXCLUDED.expires_at,
                acquired_at = CASE WHEN l.holder = EXCLUDED.holder THEN l.acquired_at ELSE EXCLUDED.acquired_at END
            WHERE l.holder = EXCLUDED.holder OR l.expires_at <= now()
            RETURNING name
            """,
            [name, holder, float(ttl)],
        )
        return cursor.fetchone() is not None


def claim(names: Iterable[str], holder: str, ttl: float, limit: int) -> list[str]:
    """Take up to `limit` of `names` that nobody else holds (or whose holder let them expire); returns those taken
    (those `holder` had already are renewed and count).

    Two processes claiming at once cannot both get one name: the loser's INSERT meets the winner's row, whose lease
    has not expired, and ON CONFLICT's WHERE leaves it alone (PostgreSQL re-checks it on the committed row).
    """
    names = list(names)
    if limit <= 0 or not names:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH free AS (
                SELECT n FROM unnest(%s::text[]) AS n
                WHERE NOT EXISTS (SELECT 1 FROM {TABLE} WHERE name = n AND expires_at > now() AND holder <> %s)
                LIMIT %s
            )
            INSERT INTO {TABLE} AS l (name, holder, expires_at, acquired_at)
            SELECT n, %s, now() + make_interval(secs => %s), now() FROM free
            ON CONFLICT (name) DO UPDATE SET
                holder = EXCLUDED.holder,
                expires_at = EXCLUDED.expires_at,
                acquired_at = CASE WHEN l.holder = EXCLUDED.holder THEN l.acquired_at ELSE EXCLUDED.acquired_at END
            WHERE l.expires_at <= now() OR l.holder = EXCLUDED.holder
            RETURNING name
            """,
            [names, holder, limit, holder, float(ttl)],
        )
        return [row[0] for row in cursor.fetchall()]


def renew(names: Iterable[str], holder: str, ttl: float) -> set[str]:
    """Extend the leases `holder` still has among `names`; returns those (the others were taken over: let them go)."""
    names = list(names)
    if not names:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {TABLE} SET expires_at = now() + make_interval(secs => %s) "
            "WHERE holder = %s AND name = ANY(%s::text[]) RETURNING name",
            [float(ttl), holder, names],
        )
        return {row[0] for row in cursor.fetchall()}


def release(names: Iterable[str], holder: str) -> None:
    """Give leases back at once (a clean stop, a rebalance), so the next holder need not wait for them to expire."""
    names = list(names)
    if names:
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {TABLE} WHERE holder = %s AND name = ANY(%s::text[])", [holder, names])


def live(prefix: str) -> dict[str, str]:
    """The unexpired leases whose name starts with `prefix`: name -> holder."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT name, holder FROM {TABLE} WHERE name LIKE %s AND expires_at > now()",
            [prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"],
        )
        return dict(cursor.fetchall())
