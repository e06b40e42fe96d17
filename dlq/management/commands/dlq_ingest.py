"""The ingest worker `make run` starts: discovery every DLQ_DISCOVERY_SECONDS, then one round per enabled source.

SIGTERM (`make run`'s supervisor stopping) sets a flag; the current round finishes — its commit and its ack —
and the loop ends.
"""

import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from dlq import discovery, ingest
from dlq.models import DeadLetterSource


class Command(BaseCommand):
    help = "Discover broker DLQs and copy their messages into Switchyard, acknowledging only after the commit."

    def add_arguments(self, parser):
        parser.add_argument("--source", type=int, action="append", help="only these source ids")
        parser.add_argument("--no-discovery", action="store_true")
        parser.add_argument("--batch", type=int, default=100)

    def handle(self, *args, **options):
        self.stopping = False
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        next_discovery = 0.0
        try:
            while not self.stopping:
                close_old_connections()
                if not options["no_discovery"] and time.monotonic() >= next_discovery:
                    for source in discovery.discover():
                        self.stdout.write(f"discovered {source}")
                    next_discovery = time.monotonic() + settings.DLQ_DISCOVERY_SECONDS
                sources = DeadLetterSource.objects.filter(enabled=True)
                if options["source"]:
                    sources = sources.filter(pk__in=options["source"])
                busy = False
                for source in sources:
                    if self.stopping:
                        break
                    busy |= ingest.run_once(source, options["batch"], timeout=0.2)
                if not busy and not self.stopping:
                    time.sleep(settings.DLQ_INGEST_IDLE_SECONDS)
        finally:
            ingest.close_all()

    def _stop(self, signum, frame):
        self.stopping = True
