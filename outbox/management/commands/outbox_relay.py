"""`python manage.py outbox_relay`: relay outbox rows to the brokers until SIGTERM or Ctrl-C.

Several may run at once: each claims different keys (see outbox/relay.py).
"""

import signal
import threading

from django.core.management.base import BaseCommand

from outbox.relay import LiveThrottle, Relay, serve


class Command(BaseCommand):
    help = "Relay outbox events to Kafka, SQS, RabbitMQ and NATS."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=None, help="rows per batch (default OUTBOX_BATCH_SIZE)")
        parser.add_argument("--quiet-live", action="store_true", help="do not broadcast backlog updates")

    def handle(self, *args, batch_size=None, quiet_live=False, **options):
        stop = threading.Event()

        def on_signal(signum, frame):
            # Finish the batch in hand (its rows are marked in the same transaction), then leave.
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        relay = Relay(batch_size=batch_size, on_batch=None if quiet_live else LiveThrottle())
        self.stdout.write("outbox relay started", ending="\n")
        self.stdout.flush()
        totals = serve(stop, relay)
        self.stdout.write(
            f"outbox relay stopped: {totals.published} published, {totals.failed} failed attempts, "
            f"{totals.deferred} deferred"
        )
