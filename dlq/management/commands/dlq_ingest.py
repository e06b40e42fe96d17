"""The ingest worker `make run` starts: discovery every DLQ_DISCOVERY_SECONDS, then rounds over the sources it holds.

Several may run side by side (replicas): each reads only the sources it holds a lease on, about an equal share each,
and takes over a dead one's sources within a lease period (dlq.leases). A round polls each held source without
waiting (timeout 0: what the broker has now) and sleeps DLQ_INGEST_IDLE_SECONDS only when none had anything, so a
round costs one broker round trip per source, not one poll timeout per source.

Nothing one source or one message does ends the loop: each source's failures are recorded on it and delay only its
own next round (dlq.ingest.run_once), an unexpected error is logged with the source's name, and a database outage
makes the loop wait (growing, capped) and try again instead of exiting.

SIGTERM (`make run`'s supervisor stopping) sets a flag; the current round finishes — its commit and its ack —
and the loop ends.
"""

import logging
import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections, connection
from django.db.models import Q
from django.utils import timezone

from console.backoff import backoff
from dlq import discovery, ingest
from dlq.leases import SourceLeases
from dlq.models import DeadLetterSource

log = logging.getLogger("dlq.ingest")

OUTAGE_MAX_SECONDS = 30.0  # longest wait between tries while the database is unreachable


class Command(BaseCommand):
    help = "Discover broker DLQs and copy their messages into Switchyard, acknowledging only after the commit."
    stopping = False  # set by SIGTERM / SIGINT

    def add_arguments(self, parser):
        parser.add_argument("--source", type=int, action="append", help="only these source ids")
        parser.add_argument("--no-discovery", action="store_true")
        parser.add_argument("--batch", type=int, default=100)

    def handle(self, *args, **options):
        self.stopping = False
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        next_discovery = 0.0
        outages = 0
        try:
            while not self.stopping:
                try:
                    close_old_connections()
                    if not options["no_discovery"] and time.monotonic() >= next_discovery:
                        self._discover()
                        next_discovery = time.monotonic() + settings.DLQ_DISCOVERY_SECONDS
                    busy = self._round(options)
                    outages = 0
                except ingest.OUTAGE as exc:
                    outages += 1
                    delay = backoff(outages, 1.0, OUTAGE_MAX_SECONDS, "equal")
                    log.warning("dlq_ingest: the database is unreachable (%s); trying again in %.1f s", exc, delay)
                    # What was polled and not stored goes back to the brokers; the connection is made anew.
                    ingest.close_all()
                    connection.close()
                    self._sleep(delay)
                    continue
                if not busy and not self.stopping:
                    self._sleep(settings.DLQ_INGEST_IDLE_SECONDS)
        finally:
            ingest.close_all()
            self._release()

    @property
    def leases(self) -> SourceLeases:
        if getattr(self, "_leases", None) is None:
            self._leases = SourceLeases(on_lost=self._let_go)
        return self._leases

    def _let_go(self, source_id: int) -> None:
        ingest.drop(DeadLetterSource.objects.filter(pk=source_id).first() or DeadLetterSource(pk=source_id))

    def _release(self) -> None:
        """Hand the sources back at a clean stop, so the other processes take them at once instead of in a lease
        period (a SIGKILL cannot do this; then they wait it out)."""
        try:
            self.leases.release_all()
        except Exception:  # noqa: BLE001 - they expire on their own
            log.warning("dlq_ingest: could not release the leases; they expire on their own", exc_info=True)

    def _discover(self) -> None:
        try:
            for source in discovery.discover():
                self.stdout.write(f"discovered {source}")
        except ingest.OUTAGE:
            raise
        except Exception:  # noqa: BLE001 - discovery runs again next time; ingest goes on meanwhile
            log.exception("dlq_ingest: discovery failed")

    def _round(self, options) -> bool:
        """One round over the held sources that are due (a failing one waits out its backoff); True if any had
        messages. Every third of a lease period it first renews, balances and claims the leases."""
        enabled = DeadLetterSource.objects.filter(enabled=True)
        if options["source"]:
            enabled = enabled.filter(pk__in=options["source"])
        if self.leases.due():
            self.leases.tick(enabled.values_list("pk", flat=True))
        held = self.leases.current()
        for source_id in ingest.open_sources() - held:
            self._let_go(source_id)  # leases lapsed (the database was out of reach): the next holder reads it now
        sources = enabled.filter(pk__in=held).filter(
            Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=timezone.now())
        )
        busy = False
        for source in list(sources):
            if self.stopping:
                break
            try:
                # Timeout 0: take what is there; waiting here would add one poll timeout per source to the round.
                busy |= ingest.run_once(source, options["batch"], timeout=0)
            except ingest.OUTAGE:
                raise
            except Exception:  # noqa: BLE001 - run_once records what it expects; this is what it did not
                log.exception("dlq_ingest: ingest from %s failed", source)
                ingest.drop(source)
        return busy

    def _sleep(self, seconds: float) -> None:
        """Sleep, waking at once for SIGTERM."""
        deadline = time.monotonic() + seconds
        while not self.stopping and (remaining := deadline - time.monotonic()) > 0:
            time.sleep(min(remaining, 0.1))

    def _stop(self, signum, frame):
        self.stopping = True
