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

import logging
import math
import os
import random
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from django.db import connection

TABLE = "console_lease"
SAFETY = 0.8  # of a lease period: how long after a renewal a process trusts its leases without another

log = logging.getLogger(__name__)


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


@contextmanager
def alone(name: str, ttl: float) -> Iterator[bool]:
    """Hold `name` for the block, or yield False at once when someone else holds it (skip the work then).

    For work that must not run twice at once anywhere (a sampling pass): each call is its own holder, so two threads
    or two worker processes exclude each other alike; one that dies holding it frees it after `ttl`.
    """
    me = f"{holder_id()}:{secrets.token_hex(4)}"
    if not acquire(name, me, ttl):
        yield False
        return
    try:
        yield True
    finally:
        release([name], me)


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


class Share:
    """Pieces of work (`items`, strings) shared by the live processes of one kind, an equal share each.

    Each piece is a lease `<kind>:item:<item>`; each process also holds a member lease `<kind>:member:<holder>`, so
    every process can count the live ones. tick(), every third of a lease period:

    1. renews this process's member lease and counts the live members;
    2. renews its pieces; a piece another process took is let go at once (on_lost closes what reads it);
    3. lets go of pieces beyond its fair share, ceil(pieces / members), so a process that starts later gets work;
    4. claims free or expired pieces up to that share.

    A SIGKILLed process renews nothing: after one lease period its member lease and its pieces expire and the others
    claim them (step 4). A process only works on its pieces while its leases are surely current (current(): until a
    little short of the lease period after the last renewal that worked), so one that cannot reach the database stops
    before anyone else may take its pieces.
    """

    def __init__(self, kind: str, ttl: float, on_lost: Callable[[str], None] | None = None, holder: str | None = None):
        self.kind = kind
        self.ttl = float(ttl)
        self.holder = holder or holder_id()
        self.on_lost = on_lost or (lambda item: None)
        self.mine: set[str] = set()
        self.members = 1
        self.valid_until = 0.0  # time.monotonic()
        self._next_tick = 0.0

    def due(self) -> bool:
        return time.monotonic() >= self._next_tick

    def current(self) -> set[str]:
        """The pieces this process may work on now (none once its leases may have lapsed)."""
        return set(self.mine) if time.monotonic() < self.valid_until else set()

    def tick(self, items: Iterable[str]) -> None:
        """Steps 1–4 for the pieces there are now. Raises what the database raises (the caller waits an outage out;
        the leases then lapse and current() is empty)."""
        started = time.monotonic()
        items = set(items)
        member = f"{self.kind}:member:"
        acquire(member + self.holder, self.holder, self.ttl)
        self.members = max(1, len(live(member)))
        share = math.ceil(len(items) / self.members)
        kept = {self._item(n) for n in renew(map(self._name, self.mine), self.holder, self.ttl)}
        for item in self.mine - kept:
            log.warning("%s: %s was taken over by another process; letting it go", self.kind, item)
            self.on_lost(item)
        keep = list(kept & items)
        random.shuffle(keep)
        surplus = (kept - items) | set(keep[share:])
        for item in surplus:
            self.on_lost(item)  # closed first: the next holder must not find this process still reading it
        release(map(self._name, surplus), self.holder)
        kept -= surplus
        free = [self._name(item) for item in items - kept]
        random.shuffle(free)  # two processes starting together do not both reach for the same pieces first
        gained = {self._item(n) for n in claim(free, self.holder, self.ttl, share - len(kept))}
        if gained:
            log.info("%s: now working on %s (%d process(es) share the work)", self.kind, sorted(gained), self.members)
        self.mine = kept | gained
        self.valid_until = started + self.ttl * SAFETY
        self._next_tick = started + self.ttl / 3

    def release_all(self) -> None:
        """A clean stop: give everything back so the others need not wait a lease period."""
        release([*map(self._name, self.mine), f"{self.kind}:member:{self.holder}"], self.holder)
        self.mine = set()
        self.valid_until = 0.0

    def _name(self, item: str) -> str:
        return f"{self.kind}:item:{item}"

    def _item(self, name: str) -> str:
        return name.removeprefix(f"{self.kind}:item:")
