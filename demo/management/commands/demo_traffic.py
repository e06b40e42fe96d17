import signal
import time

from django.core.management.base import BaseCommand
from django.db import close_old_connections


class Command(BaseCommand):
    help = "Generate demo traffic (orders through sagas, the outbox and four brokers, with failures) until SIGTERM."

    def add_arguments(self, parser):
        parser.add_argument("--rate", type=float, default=1.0, help="new orders per second")
        parser.add_argument("--ticks", type=int, default=0, help="stop after this many orders (0: run until stopped)")

    def handle(self, rate, ticks, **options):
        from demo.traffic import Demo

        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        demo = Demo()
        self.stdout.write(f"demo traffic on {', '.join(demo.used) or 'no broker'} at {rate}/s")
        try:
            n = 0
            while not stopping and (ticks == 0 or n < ticks):
                started = time.monotonic()
                demo.tick()
                # Every third minute the consumers slow down, so lag builds up and then drains.
                slow = int(time.time() // 60) % 3 == 0
                demo.consume(budget=1 if slow else 20)
                n += 1
                close_old_connections()
                time.sleep(max(0.0, 1 / rate - (time.monotonic() - started)))
        finally:
            demo.close()
