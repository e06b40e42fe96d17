"""Kafka through confluent-kafka (librdkafka)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from brokers.base import (
    HEALTH_TIMEOUT,
    BrokerAdapter,
    BrokerError,
    BrokerUnavailable,
    Destination,
    DestinationNotFound,
    Lazy,
    Message,
    OutgoingMessage,
    PublishError,
    PublishResult,
    Subscription,
    check_tcp,
    header_bytes,
)

logger = logging.getLogger(__name__)

# At-least-once: every in-sync replica has the message before it counts as sent, and idempotence stops the producer's
# own retries from writing duplicates. Both emulators used in tests (noida-db, tansu) accept idempotent producers.
PRODUCER_DEFAULTS = {"acks": "all", "enable.idempotence": True, "linger.ms": 5, "message.timeout.ms": 30_000}
# Keys that only a consumer understands; librdkafka warns when a producer or admin client is given them, and callers
# pass one client_config for all three (e.g. session.timeout.ms for tansu's slow group joins).
CONSUMER_ONLY = {
    "group.id",
    "group.instance.id",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "auto.offset.reset",
    "enable.auto.commit",
    "auto.commit.interval.ms",
    "enable.auto.offset.store",
    "enable.partition.eof",
    "isolation.level",
    "partition.assignment.strategy",
    "group.protocol",
    "fetch.min.bytes",
    "fetch.wait.max.ms",
}
PRODUCER_ONLY = set(PRODUCER_DEFAULTS) | {"batch.size", "compression.type", "retries"}
REQUEST_TIMEOUT = 10.0
DELIVERY_TIMEOUT = 35.0  # a little over message.timeout.ms, after which librdkafka reports each message as failed


class KafkaAdapter(BrokerAdapter):
    name = "kafka"

    def __init__(self, bootstrap_servers: str, client_config: dict | None = None):
        self.bootstrap_servers = bootstrap_servers
        self._config = {"bootstrap.servers": bootstrap_servers, "logger": logger, **(client_config or {})}
        # One producer per process, as librdkafka intends; its delivery callbacks run inside poll()/flush().
        self._producer = Lazy(self._new_producer, lambda p: p.flush(10))
        self._admin = Lazy(lambda: AdminClient(self._client_config(exclude=CONSUMER_ONLY | PRODUCER_ONLY)))

    def __repr__(self) -> str:
        return f"<KafkaAdapter {self.bootstrap_servers}>"

    def _client_config(self, exclude: set[str], **overrides: Any) -> dict:
        config = {k: v for k, v in self._config.items() if k not in exclude}
        config.update(overrides)
        return config

    def _new_producer(self) -> Producer:
        return Producer({**PRODUCER_DEFAULTS, **self._client_config(exclude=CONSUMER_ONLY)})

    def _probe(self) -> tuple[str | None, int | None]:
        check_tcp(self.bootstrap_servers.split(","), f"Kafka at {self.bootstrap_servers}")
        metadata = self._metadata()
        brokers = len(metadata.brokers)
        version = f"cluster {metadata.cluster_id}, {brokers} broker{'s' if brokers != 1 else ''}"
        return version, sum(1 for name in metadata.topics if not name.startswith("__"))

    def _metadata(self, timeout: float = HEALTH_TIMEOUT):
        try:
            return self._admin.get().list_topics(timeout=timeout)
        except KafkaException as exc:
            raise BrokerUnavailable(f"Kafka at {self.bootstrap_servers}: {exc.args[0].str()}") from exc

    def list_destinations(self) -> list[Destination]:
        topics = self._metadata().topics
        # "__consumer_offsets" and friends are the broker's own bookkeeping.
        return [Destination(name, "topic") for name in sorted(topics) if not name.startswith("__")]

    def ensure_destination(self, name: str, partitions: int = 1, replication_factor: int = 1, **config: Any) -> None:
        topic = NewTopic(name, partitions, replication_factor, config={k: str(v) for k, v in config.items()})
        future = self._admin.get().create_topics([topic], request_timeout=10)[name]
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise BrokerError(f"could not create topic {name!r}: {exc.args[0].str()}") from exc
        # Metadata can lag the creation by a moment; wait so a publish or read straight after sees the topic.
        deadline = time.monotonic() + 10
        while name not in self._metadata().topics and time.monotonic() < deadline:
            time.sleep(0.1)

    def delete_destination(self, name: str) -> None:
        future = self._admin.get().delete_topics([name], request_timeout=10)[name]
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise BrokerError(f"could not delete topic {name!r}: {exc.args[0].str()}") from exc

    def publish_batch(self, messages: Iterable[OutgoingMessage]) -> list[PublishResult]:
        messages = list(messages)
        producer = self._producer.get()
        results: list[PublishResult | None] = [None] * len(messages)
        errors: dict[int, str] = {}

        def on_delivery(index: int, err, msg) -> None:
            if err is not None:
                errors[index] = err.str()
            else:
                results[index] = PublishResult(msg.topic(), None, msg.partition(), msg.offset())

        for index, message in enumerate(messages):
            headers = [(k, header_bytes(v)) for k, v in (message.headers or {}).items()]
            callback = lambda err, msg, index=index: on_delivery(index, err, msg)  # noqa: E731
            while True:
                try:
                    producer.produce(
                        message.destination, message.body, message.key, headers=headers, on_delivery=callback
                    )
                    break
                except BufferError:
                    # The local queue is full: serve delivery reports to make room, then try again.
                    producer.poll(0.5)
                except KafkaException as exc:
                    errors[index] = exc.args[0].str()
                    break
            producer.poll(0)

        # Poll rather than flush(): flush() would also wait for other threads' messages.
        deadline = time.monotonic() + DELIVERY_TIMEOUT
        while sum(r is not None for r in results) + len(errors) < len(messages) and time.monotonic() < deadline:
            producer.poll(0.05)

        failures = [
            (message, errors.get(index, "no delivery report in time"))
            for index, message in enumerate(messages)
            if results[index] is None
        ]
        if failures:
            raise PublishError("Kafka did not confirm every message", failures, [r for r in results if r])
        return results  # type: ignore[return-value]

    def read(self, destination: str, max_messages: int = 10, timeout: float = 5.0) -> list[Message]:
        """Read from the start of every partition with assign() and no commits, so no group is joined or moved.

        Stops at max_messages, when every partition reports end-of-partition, or at the timeout. End-of-partition
        comes from the high watermark, which tansu miscounts after batches; a too-low watermark only means we read
        until the timeout, because librdkafka reports the end only when the fetch position equals it.
        """
        # Full metadata: asking for one topic by name makes brokers with auto-creation on create it.
        topic = self._metadata(timeout=REQUEST_TIMEOUT).topics.get(destination)
        if topic is None or topic.error is not None:
            raise DestinationNotFound(f"no Kafka topic {destination!r}")
        consumer = Consumer(
            self._client_config(
                exclude=PRODUCER_ONLY,
                **{
                    "group.id": f"switchyard-read-{uuid.uuid4().hex}",
                    "enable.auto.commit": False,
                    "enable.partition.eof": True,
                },
            )
        )
        try:
            partitions = sorted(topic.partitions)
            consumer.assign([TopicPartition(destination, p, OFFSET_BEGINNING) for p in partitions])
            found: list[Message] = []
            at_end: set[int] = set()
            deadline = time.monotonic() + timeout
            while len(found) < max_messages and len(at_end) < len(partitions):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                msg = consumer.poll(min(remaining, 0.2))
                if msg is None:
                    continue
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        at_end.add(msg.partition())
                        continue
                    raise BrokerError(f"reading {destination!r}: {msg.error().str()}")
                at_end.discard(msg.partition())
                found.append(_to_message(msg))
        finally:
            consumer.close()
        return sorted(found, key=lambda m: (m.partition, m.offset))

    def subscribe(self, destination: str, group: str, **options: Any) -> KafkaSubscription:
        """A consumer-group member with auto-commit off: offsets move only in ack(), after the caller's commit.

        options: `from_beginning` (default True: a new group starts at the earliest offset) and any librdkafka
        consumer setting (e.g. {"session.timeout.ms": 6000}).
        """
        from_beginning = options.pop("from_beginning", True)
        config = self._client_config(
            exclude=PRODUCER_ONLY,
            **{
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest" if from_beginning else "latest",
                **options,
            },
        )
        consumer = Consumer(config)
        consumer.subscribe([destination])
        return KafkaSubscription(consumer, destination)

    def close(self) -> None:
        self._producer.reset()
        self._admin.reset()


class KafkaSubscription(Subscription):
    def __init__(self, consumer: Consumer, destination: str):
        self._consumer = consumer
        self.destination = destination

    def poll(self, max_messages: int = 100, timeout: float = 1.0) -> list[Message]:
        found = []
        for msg in self._consumer.consume(num_messages=max_messages, timeout=timeout):
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise BrokerError(f"consuming {self.destination!r}: {msg.error().str()}")
            found.append(_to_message(msg))
        return found

    def ack(self, messages) -> None:
        """Commit, per partition, the offset after the highest message given (Kafka acks by position)."""
        highest: dict[tuple[str, int], int] = {}
        for m in messages:
            key = (m.destination, m.partition)
            highest[key] = max(highest.get(key, -1), m.offset)
        if not highest:
            return
        offsets = [TopicPartition(topic, partition, offset + 1) for (topic, partition), offset in highest.items()]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            raise BrokerError(f"committing offsets on {self.destination!r}: {exc.args[0].str()}") from exc

    def close(self) -> None:
        self._consumer.close()


def _to_message(msg) -> Message:
    ts_type, ts_ms = msg.timestamp()
    timestamp = None if ts_type == TIMESTAMP_NOT_AVAILABLE else datetime.fromtimestamp(ts_ms / 1000, UTC)
    # Kafka allows repeated header names; the interface has a dict, so the last value wins.
    headers = {name: value or b"" for name, value in (msg.headers() or [])}
    return Message(
        destination=msg.topic(),
        body=msg.value() or b"",
        key=msg.key(),
        headers=headers,
        message_id=None,  # Kafka has no message id; (partition, offset) identifies a message
        partition=msg.partition(),
        offset=msg.offset(),
        timestamp=timestamp,
    )
