import signal
import time

from django.core.management.base import BaseCommand

from console.brokers import NotConfigured
from sagas.ingest import Ingestor, run_forever


class Command(BaseCommand):
    help = "Consume saga events (JSON, one event or a list per message) from Kafka and record them."

    def add_arguments(self, parser):
        parser.add_argument("--topic", help="default: settings.SAGA_EVENTS_TOPIC")
        parser.add_argument("--group", help="default: settings.SAGA_INGEST_GROUP")

    def handle(self, *args, **options):
        self.stopping: list[bool] = []
        # SIGTERM (make run's supervisor, docker, systemd) finishes the current batch, then exits: nothing read is
        # left unacked.
        signals = (signal.SIGTERM, signal.SIGINT)
        previous = {sig: signal.signal(sig, lambda *_: self.stopping.append(True)) for sig in signals}
        try:
            ingestor = self._connect(options)
            if ingestor is None:
                return
            self.stdout.write(f"ingesting saga events from {ingestor.topic}")
            try:
                run_forever(ingestor, lambda: bool(self.stopping))
            finally:
                ingestor.close()
            self.stdout.write(f"stopped: {ingestor.recorded} recorded, {ingestor.rejected} rejected")
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _connect(self, options) -> Ingestor | None:
        while not self.stopping:
            try:
                return Ingestor(options["topic"], options["group"])
            except NotConfigured:
                # `make run` without Kafka: stay up quietly (an exit would only be restarted, again and again).
                self.stdout.write("Kafka is not configured (KAFKA_BOOTSTRAP_SERVERS); saga events come over HTTP only")
                while not self.stopping:
                    time.sleep(0.5)
            except Exception as e:  # the broker is still starting: retry instead of taking `make run` down
                self.stderr.write(f"saga ingest cannot start yet ({e}); retrying in 2 s")
                time.sleep(2)
        return None
