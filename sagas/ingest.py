"""Kafka → saga events: one `run_once()` step (poll, validate, record, commit, ack) and a thin loop around it."""

import logging

from django.conf import settings
from django.db import close_old_connections

from console import brokers
from console.inputs import loads
from sagas.recording import record_events, validate_event

log = logging.getLogger(__name__)


class Ingestor:
    def __init__(self, topic: str | None = None, group: str | None = None, batch: int = 500, **options):
        self.topic = topic or settings.SAGA_EVENTS_TOPIC
        kafka = brokers.get("kafka", settings.SAGA_EVENTS_CONNECTION or None)
        kafka.ensure_destination(self.topic)  # subscribing to a missing topic only yields errors until it exists
        # A killed ingest keeps its partitions until the group gives up on it: librdkafka's 45 s default left the
        # restarted process idle that long (issue 14's crash drill); a shorter session hands them over sooner.
        timeout = settings.SAGA_INGEST_SESSION_TIMEOUT_MS
        options = {"session.timeout.ms": timeout, "heartbeat.interval.ms": max(timeout // 3, 100), **options}
        self.subscription = kafka.subscribe(self.topic, group or settings.SAGA_INGEST_GROUP, **options)
        self.batch = batch
        self.recorded = 0
        self.rejected = 0

    def run_once(self, timeout: float = 1.0) -> bool:
        """One batch. True when messages were read. Offsets are committed only after the database commit, so a
        worker killed in between reads the batch again and the event ids make the repeat harmless."""
        messages = self.subscription.poll(self.batch, timeout)
        if not messages:
            return False
        events = []
        for message in messages:
            for item in _items(message):
                event, errors = validate_event(item)
                if errors:
                    # A malformed event can never become valid: log it and move on rather than block the partition.
                    self.rejected += 1
                    log.warning(
                        "rejected saga event at %s[%s]@%s: %s",
                        message.destination,
                        message.partition,
                        message.offset,
                        errors,
                    )
                    continue
                event.setdefault(
                    "broker",
                    {
                        "transport": "kafka",
                        "destination": message.destination,
                        "partition": message.partition,
                        "offset": message.offset,
                    },
                )
                events.append(event)
        results = record_events(events)  # commits before returning
        self.recorded += results.count("created")
        self.subscription.ack(messages)
        return True

    def close(self) -> None:
        self.subscription.close()


def _items(message) -> list:
    try:
        body = loads(message.body)
    except ValueError:  # not JSON, not UTF-8, or nested too deeply: a message that can never become an event
        log.warning("saga event at %s[%s]@%s is not JSON", message.destination, message.partition, message.offset)
        return [None]
    return body if isinstance(body, list) else [body]


def run_forever(ingestor: Ingestor, should_stop) -> None:
    while not should_stop():
        close_old_connections()
        try:
            ingestor.run_once()
        except Exception:
            log.exception("saga ingest step failed; retrying")
            close_old_connections()
