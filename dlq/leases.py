"""Which dead-letter sources this `dlq_ingest` process reads, when several run side by side.

Each source is a lease (console.leases) named `dlq-source:<id>`; each running process also holds a member lease,
`dlq-ingest-member:<holder>`, so every process can count the live ones. Every third of a lease period a process:

1. renews its member lease, and counts the live members;
2. renews its source leases; a source whose lease another process took is let go at once (Kafka: its consumer is
   closed, whatever it polled and did not ack comes back to the new holder);
3. lets go of sources beyond its fair share, ceil(sources / members), so a process that starts later gets work;
4. claims free or expired sources up to that share.

A SIGKILLed process renews nothing: after one lease period its member lease and its sources expire and the others
claim them (step 4) and read on from what was acknowledged (Kafka: the group's committed offsets). Its last batch,
stored and not acked, is read again and dropped by the unique (source, message id); nothing is lost.

A process only polls while its leases are surely current: until `valid_until`, a little short of the lease period
after the last renewal that worked. A process that cannot reach the database stops polling before anyone else may
take its sources.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Iterable

from django.conf import settings

from console import leases

log = logging.getLogger("dlq.ingest")

SOURCE = "dlq-source:"
MEMBER = "dlq-ingest-member:"
SAFETY = 0.8  # of a lease period: how long after a renewal this process trusts its leases without another


class SourceLeases:
    def __init__(self, ttl: float | None = None, holder: str | None = None, on_lost: Callable[[int], None] = None):
        self.ttl = float(ttl if ttl is not None else settings.DLQ_INGEST_LEASE_SECONDS)
        self.holder = holder or leases.holder_id()
        self.on_lost = on_lost or (lambda source_id: None)  # closes the source's subscription before it goes
        self.mine: set[int] = set()
        self.members = 1
        self.valid_until = 0.0  # time.monotonic()
        self._next_tick = 0.0

    def due(self) -> bool:
        return time.monotonic() >= self._next_tick

    def current(self) -> set[int]:
        """The sources this process may poll now (none once its leases may have lapsed)."""
        return self.mine if time.monotonic() < self.valid_until else set()

    def tick(self, candidates: Iterable[int]) -> None:
        """Steps 1–4 above for the enabled sources `candidates`. Raises what the database raises (an outage is
        the caller's to wait out; the leases then lapse and current() is empty)."""
        started = time.monotonic()
        candidates = set(candidates)
        leases.acquire(MEMBER + self.holder, self.holder, self.ttl)
        self.members = max(1, len(leases.live(MEMBER)))
        share = math.ceil(len(candidates) / self.members)
        kept = {_id(name) for name in leases.renew(map(_name, self.mine), self.holder, self.ttl)}
        for source_id in self.mine - kept:
            log.warning("dlq_ingest: source %s was taken over by another process; letting it go", source_id)
            self.on_lost(source_id)
        surplus = kept - candidates  # disabled or deleted since
        keep = list(kept & candidates)
        random.shuffle(keep)
        surplus |= set(keep[share:])
        for source_id in surplus:
            self.on_lost(source_id)  # closed first: the next holder must not find this consumer still reading
        leases.release(map(_name, surplus), self.holder)
        kept -= surplus
        free = [_name(s) for s in candidates - kept]
        random.shuffle(free)  # two processes starting together do not both reach for the same sources first
        gained = {_id(name) for name in leases.claim(free, self.holder, self.ttl, share - len(kept))}
        if gained:
            log.info("dlq_ingest: now reading source(s) %s (%d process(es) share them)", sorted(gained), self.members)
        self.mine = kept | gained
        self.valid_until = started + self.ttl * SAFETY
        self._next_tick = started + self.ttl / 3

    def release_all(self) -> None:
        """A clean stop: give everything back so the others need not wait a lease period."""
        leases.release([*map(_name, self.mine), MEMBER + self.holder], self.holder)
        self.mine = set()
        self.valid_until = 0.0


def _name(source_id: int) -> str:
    return f"{SOURCE}{source_id}"


def _id(name: str) -> int:
    return int(name.removeprefix(SOURCE))
