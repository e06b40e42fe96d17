"""Kafka → saga events: one `run_once()` step (poll, validate, record, commit, ack) and a thin loop around it.

Several ingest processes may run at once: they share the topic's partitions by lease (console.leases.Share, one lease
per partition), each reading only its own with assign() from the group's committed offsets. A key lives on one
partition and a partition has one reader at a time, so each saga's events are recorded in order; a SIGKILLed
process's partitions move to the others within a lease period (SAGA_INGEST_LEASE_SECONDS), and its batch recorded
but not committed is read again and dropped by the event ids. Group membership is not used: a member that dies keeps
its partitions until the broker expires it, which noida-db never does.
"""

import logging
import time

from django.conf import settings
from django.db import close_old_connections

from console import brokers
from console.inputs import loads
from console.leases import Share
from sagas.recording import record_events, validate_event

log = logging.getLogger(__name__)


class Ingestor:
    def __init__(self, topic: str | None = None, group: str | None = None, batch: int = 500, **options):
        self.topic = topic or settings.SAGA_EVENTS_TOPIC
        self.group = group or settings.SAGA_INGEST_GROUP
        self.kafka = brokers.get("kafka", settings.SAGA_EVENTS_CONNECTION or None)
        self.kafka.ensure_destination(self.topic)  # subscribing to a missing topic only yields errors until it exists
        # Partitions move between ingest processes by lease (below), read with assign(); the group still commits the
        # offsets, and a short session keeps a killed member from holding the group's coordinator state for
        # librdkafka's 45 s default (issue 14's crash drill found that wait).
        timeout = settings.SAGA_INGEST_SESSION_TIMEOUT_MS
        self.options = {"session.timeout.ms": timeout, "heartbeat.interval.ms": max(timeout // 3, 100), **options}
        self.share = Share(f"saga-ingest:{self.group}:{self.topic}", settings.SAGA_INGEST_LEASE_SECONDS, self._lost)
        self.subscription = None
        self.reading: frozenset[int] = frozenset()
        self.batch = batch
        self.recorded = 0
        self.rejected = 0

    def _rebalance(self) -> None:
        """Renew, balance and claim the partition leases when due; read exactly the partitions held."""
        if self.share.due():
            partitions = self.kafka.group_offsets(self.group, topics=[self.topic])
            self.share.tick(str(o.partition) for o in partitions)
        held = frozenset(int(p) for p in self.share.current())
        if held != self.reading:
            self._close_subscription()
            if held:
                self.subscription = self.kafka.subscribe(
                    self.topic, self.group, exclusive=True, partitions=sorted(held), **self.options
                )
            self.reading = held

    def _lost(self, partition: str) -> None:
        self._close_subscription()  # reopened on the partitions still held, at once
        self.reading = frozenset()

    def _close_subscription(self) -> None:
        if self.subscription is not None:
            subscription, self.subscription = self.subscription, None
            subscription.close()

    def run_once(self, timeout: float = 1.0) -> bool:
        """One batch. True when messages were read. Offsets are committed only after the database commit, so a
        worker killed in between reads the batch again and the event ids make the repeat harmless."""
        self._rebalance()
        if self.subscription is None:
            time.sleep(min(timeout, self.share.ttl / 6))  # nothing held: another process has every partition
            return False
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
        self._close_subscription()
        try:
            self.share.release_all()  # a clean stop: the others take the partitions now, not in a lease period
        except Exception:  # noqa: BLE001 - they expire on their own
            log.warning("saga ingest: could not release the partition leases", exc_info=True)


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
