"""Celery beat that may run as several replicas: only the holder of the `celery-beat` lease sends jobs.

    celery -A console beat    (CELERY_BEAT_SCHEDULER in settings names this class)

Every tick the scheduler takes or renews the lease (console.leases, ttl BEAT_LEASE_SECONDS) and sends what is due
only while it holds it; a standby asks again every third of the lease period. A beat that dies stops renewing, so a
standby becomes active within one lease period plus one of its polls (30 + 10 s by default, inside the 60 s the
operators were promised). RedBeat's Redis lock does the same with a 25-minute default; django-celery-beat has none.

No job is fired twice across a fail-over: a beat that becomes active starts every interval from that moment, so its
first run of a job comes a full interval after it took over, and so at least an interval after the dead one's last
run of it. The price is that a job due during the fail-over itself runs one interval later than it would have.
Every Switchyard job is an interval job; a crontab job would skip an occurrence that fell in the gap.

The schedule itself lives in settings (CELERY_BEAT_SCHEDULE), the same in every replica, so the scheduler keeps no
file of its own: nothing to share between pods, nothing to lose with one.
"""

from __future__ import annotations

import logging

from celery.beat import Scheduler

log = logging.getLogger(__name__)

LEASE = "celery-beat"


class LeasedScheduler(Scheduler):
    def __init__(self, *args, **kwargs):
        import django
        from django.apps import apps

        if not apps.ready:  # beat does not set Django up on its own; the lease is a model's table
            django.setup()
        self.active = False
        super().__init__(*args, **kwargs)

    def tick(self, *args, **kwargs) -> float:
        from django.conf import settings
        from django.db import DatabaseError, close_old_connections

        from console import leases

        ttl = settings.BEAT_LEASE_SECONDS
        close_old_connections()
        try:
            held = leases.acquire(LEASE, leases.holder_id(), ttl)
        except DatabaseError as exc:
            # Not knowing is not holding: the lease runs out, and if the database comes back with it held elsewhere
            # this beat must not have sent anything meanwhile.
            log.warning("beat: the lease could not be renewed (%s); sending nothing until it is", exc)
            held = False
        if not held:
            if self.active:
                log.warning("beat: another beat holds the lease now; standing by")
            self.active = False
            return ttl / 3
        if not self.active:
            log.info("beat: holding the lease; sending the schedule from now on")
            self.active = True
            self._start_intervals_now()
        return min(super().tick(*args, **kwargs), ttl / 3)

    def _start_intervals_now(self) -> None:
        now = self.app.now()
        for entry in self.schedule.values():
            entry.last_run_at = now
        self._heap = None  # rebuilt from the entries on the next tick
