"""Kafka through confluent-kafka (librdkafka)."""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from collections.abc import Iterable
from functools import partial
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, OffsetSpec

from brokers.base import (
    AUTH_REFUSED,
    CERT_NOT_TRUSTED,
    CERT_REJECTED,
    ERROR,
    HEALTH_TIMEOUT,
    HOST_UNKNOWN,
    TIMED_OUT,
    BrokerAdapter,
    BrokerError,
    BrokerUnavailable,
    Capability,
    ConsumerGroup,
    Destination,
    DestinationNotFound,
    Lazy,
    Message,
    OffsetChange,
    OutgoingMessage,
    PartitionOffsets,
    PendingAge,
    PendingPublish,
    PublishError,
    PublishResult,
    RedactingLogger,
    Subscription,
    check_tcp,
    epoch_datetime,
    header_bytes,
    reason_for,
)
from brokers.kafka_security import kafka_security

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
# Group-membership settings, meaningless (and static membership refused) for a consumer that assigns its partitions.
MEMBERSHIP_ONLY = {
    "group.instance.id",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "partition.assignment.strategy",
    "group.protocol",
}
PRODUCER_ONLY = set(PRODUCER_DEFAULTS) | {"batch.size", "compression.type", "retries"}
REQUEST_TIMEOUT = 10.0
DELIVERY_TIMEOUT = 35.0  # a little over message.timeout.ms, after which librdkafka reports each message as failed


class KafkaAdapter(BrokerAdapter):
    name = "kafka"
    capabilities = frozenset(
        {
            Capability.CONSUMER_GROUPS,
            Capability.OFFSET_RESET,
            Capability.TOPIC_PATTERNS,
            Capability.POSITIONS,
            Capability.KEY_ORDERED_PIPELINE,
            Capability.PENDING_AGE,
        }
    )
    max_message_bytes = 1_000_000  # message.max.bytes' default

    def __init__(
        self,
        bootstrap_servers: str,
        client_config: dict | None = None,
        *,
        security_protocol: str = "PLAINTEXT",
        sasl: dict | None = None,
        tls: dict | None = None,
        properties: dict | None = None,
    ):
        """`security_protocol`, `sasl`, `tls` and `properties` as in brokers.kafka_security (checked here: a bad
        setting raises BrokerConfigError before anything connects). `client_config` is librdkafka settings too,
        applied after them (tests and benchmarks tune timeouts with it)."""
        self.bootstrap_servers = bootstrap_servers
        security = kafka_security(security_protocol, sasl, tls, {**(properties or {}), **(client_config or {})})
        self._secrets = security.secrets
        self._security = security.summary
        # librdkafka logs through this; the adapter's secrets are blanked out of every line on the way.
        self._config = {"bootstrap.servers": bootstrap_servers, "logger": RedactingLogger(logger, self._secrets)}
        self._config.update(security.config)
        if security.oauth_cb is not None:
            self._config["oauth_cb"] = security.oauth_cb
        # The latest errors librdkafka reported on its own (error_cb), newest last: the health check's reason.
        self._client_errors: deque[KafkaError] = deque(maxlen=20)
        self._config["error_cb"] = self._client_errors.append
        # One producer per process, as librdkafka intends; its delivery callbacks run inside poll()/flush().
        self._producer = Lazy(self._new_producer, lambda p: p.flush(10))
        self._admin = Lazy(self._new_admin)

    def __repr__(self) -> str:
        return f"<KafkaAdapter {self.bootstrap_servers} {self._security}>"

    def _client_config(self, exclude: set[str], **overrides: Any) -> dict:
        config = {k: v for k, v in self._config.items() if k not in exclude}
        config.update(overrides)
        return config

    def _client_error(self, fallback: KafkaError) -> tuple[str, str]:
        """(detail, reason) of the most telling error librdkafka reported since the probe began, else `fallback`'s."""
        found = [e for e in self._client_errors if e.code() != KafkaError._ALL_BROKERS_DOWN] or [fallback]
        ranked = sorted(found, key=lambda e: _ERROR_RANK.get(e.code(), len(_ERROR_RANK)))
        error = ranked[0]
        return error.str(), _kafka_reason(error)

    def _new_admin(self) -> AdminClient:
        admin = AdminClient(self._client_config(exclude=CONSUMER_ONLY | PRODUCER_ONLY))
        if "oauth_cb" in self._config:
            # An admin client serves oauth_cb only inside poll(): ask for the first token now, or its first request
            # would wait for a token nobody fetches.
            admin.poll(0)
        return admin

    def _new_producer(self) -> Producer:
        return Producer({**PRODUCER_DEFAULTS, **self._client_config(exclude=CONSUMER_ONLY)})

    def _probe(self) -> tuple[str | None, int | None]:
        check_tcp(self.bootstrap_servers.split(","), f"Kafka at {self.bootstrap_servers}")
        self._client_errors.clear()
        started = time.monotonic()
        try:
            metadata = self._admin.get().list_topics(timeout=HEALTH_TIMEOUT)
        except KafkaException as exc:
            # The metadata call only says "transport failure" or "timed out"; what went wrong underneath (a refused
            # SASL login, a TLS handshake) reaches error_cb, which poll() serves.
            self._admin.get().poll(0)
            detail, reason = self._client_error(exc.args[0])
            if not self._client_errors and time.monotonic() - started >= HEALTH_TIMEOUT * 0.9:
                # The port accepted (check_tcp) and nothing went wrong that librdkafka could name: no answer in time.
                reason = TIMED_OUT
            raise BrokerUnavailable(f"Kafka at {self.bootstrap_servers}: {self.redact(detail)}", reason=reason) from exc
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
        return self.start_batch(messages).result()

    def start_batch(self, messages: Iterable[OutgoingMessage]) -> KafkaPending:
        return KafkaPending(self._producer.get(), list(messages))

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

        options: `from_beginning` (default True: a new group starts at the earliest offset), `exclusive` (below)
        and any librdkafka consumer setting (e.g. {"session.timeout.ms": 6000}).

        exclusive=True: the caller guarantees that it is the topic's only reader (it holds a lease), so the consumer
        takes every partition with assign() instead of joining the group: it starts at the group's committed offsets
        and commits there as usual, but it is never a member. A member that dies keeps its partitions until the
        coordinator expires its session, and some Kafka-compatible brokers (noida-db) never do: the partitions of a
        SIGKILLed ingest process then stayed unread for good (issue 18). Partitions added to the topic later are
        read from the next subscription on (ingest makes one whenever a source changes hands). `partitions`: with
        exclusive, only these partitions (the ones whose leases the caller holds); default all.
        """
        from_beginning = options.pop("from_beginning", True)
        # An uncommitted offset goes to another member when this one's session ends, not after a per-message wait.
        options.pop("redeliver_after", None)
        if "session.timeout.ms" not in self._config:
            options.setdefault("session.timeout.ms", 6000)  # a dead member's partitions move within seconds
        exclusive = options.pop("exclusive", False)
        only = options.pop("partitions", None)
        if exclusive:
            for name in MEMBERSHIP_ONLY:  # a consumer that never joins has no use for them
                options.pop(name, None)
        # Full metadata, as in read(): a consumer subscribed to a missing topic only reports it once, some polls in,
        # and asking for one topic by name makes brokers with auto-creation create it.
        topic = self._metadata(timeout=REQUEST_TIMEOUT).topics.get(destination)
        if topic is None or topic.error is not None:
            raise DestinationNotFound(f"no Kafka topic {destination!r}")
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
        if exclusive:
            # No offset given: librdkafka fetches the group's committed one, else applies auto.offset.reset.
            chosen = sorted(topic.partitions) if only is None else sorted(set(only) & set(topic.partitions))
            consumer.assign([TopicPartition(destination, p) for p in chosen])
        else:
            consumer.subscribe([destination])
        return KafkaSubscription(consumer, destination)

    def close(self) -> None:
        self._producer.reset()
        self._admin.reset()

    # --- monitoring (issue #6) ---

    def consumer_groups(self) -> list[ConsumerGroup]:
        """Every consumer group with its state and member count (list + describe, two round trips).

        tansu answers describe-groups with state UNKNOWN and no members even for an active group, so a caller must not
        treat members == 0 as proof that nobody consumes there (see reset_offsets).
        """
        admin = self._admin.get()
        try:
            listed = admin.list_consumer_groups(request_timeout=REQUEST_TIMEOUT).result()
        except KafkaException as exc:
            raise BrokerUnavailable(f"Kafka at {self.bootstrap_servers}: {exc.args[0].str()}") from exc
        if listed.errors and not listed.valid:
            # No broker answered (librdkafka reports it here rather than raising): an unreachable cluster must not
            # read as one without groups, or the sampler would call every group gone instead of in error.
            raise BrokerUnavailable(
                self.redact(f"Kafka at {self.bootstrap_servers}: {'; '.join(e.str() for e in listed.errors[:3])}"),
                reason=_kafka_reason(listed.errors[0]),
            )
        names = sorted({g.group_id for g in listed.valid})
        if not names:
            return []
        groups = []
        futures = admin.describe_consumer_groups(names, request_timeout=REQUEST_TIMEOUT)
        for name in names:
            try:
                d = futures[name].result()
                state = getattr(d.state, "name", str(d.state))
                groups.append(ConsumerGroup(name, state, len(d.members), bool(d.is_simple_consumer_group)))
            except KafkaException:
                groups.append(ConsumerGroup(name, "UNKNOWN", 0))
        return groups

    def group_offsets(self, group: str, topics: Iterable[str] | None = None) -> list[PartitionOffsets]:
        """Committed and end offsets of every partition `group` has committed on (or of every partition of `topics`).

        End offsets come from ListOffsets(latest) — one request for all partitions. tansu's watermarks can be off after
        batched produces; callers show what the broker says.
        """
        committed = self.committed_offsets(group)
        if topics is not None:
            metadata = self._metadata(timeout=REQUEST_TIMEOUT).topics
            for topic in topics:
                if topic not in metadata:
                    raise DestinationNotFound(f"no Kafka topic {topic!r}")
                for p in metadata[topic].partitions:
                    committed.setdefault((topic, p), None)
            committed = {k: v for k, v in committed.items() if k[0] in set(topics)}
        ends = self.end_offsets(list(committed))
        return [
            PartitionOffsets(t, p, off if off is not None and off >= 0 else None, ends[(t, p)])
            for (t, p), off in sorted(committed.items())
            if (t, p) in ends
        ]

    def committed_offsets(self, group: str) -> dict[tuple[str, int], int | None]:
        """Committed offset per (topic, partition) of `group`; None where nothing was committed."""
        request = [ConsumerGroupTopicPartitions(group)]
        try:
            answer = self._admin.get().list_consumer_group_offsets(request, request_timeout=REQUEST_TIMEOUT)[group]
            answer = answer.result()
        except KafkaException as exc:
            raise BrokerError(f"offsets of group {group!r}: {exc.args[0].str()}") from exc
        return {(tp.topic, tp.partition): tp.offset if tp.offset >= 0 else None for tp in answer.topic_partitions or []}

    def end_offsets(self, partitions: Iterable[tuple[str, int]], spec: str = "latest") -> dict[tuple[str, int], int]:
        """ListOffsets for many partitions at once; spec "latest", "earliest" or a timestamp in ms (int)."""
        partitions = list(partitions)
        if not partitions:
            return {}
        if spec == "latest":
            offset_spec = OffsetSpec.latest()
        elif spec == "earliest":
            offset_spec = OffsetSpec.earliest()
        else:
            offset_spec = OffsetSpec.for_timestamp(int(spec))
        futures = self._admin.get().list_offsets(
            {TopicPartition(t, p): offset_spec for t, p in partitions}, request_timeout=REQUEST_TIMEOUT
        )
        result = {}
        for tp, future in futures.items():
            try:
                result[(tp.topic, tp.partition)] = future.result().offset
            except KafkaException as exc:
                # A group keeps offsets for topics deleted since; those partitions have no end and are left out.
                if exc.args[0].code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError.LEADER_NOT_AVAILABLE):
                    continue
                if "No leaders found" in exc.args[0].str():
                    continue
                raise BrokerError(f"end offset of {tp.topic}[{tp.partition}]: {exc.args[0].str()}") from exc
        return result

    def reset_offsets(
        self,
        group: str,
        topic: str,
        to: str,
        value: int | None = None,
        dry_run: bool = True,
        partitions: Iterable[int] | None = None,
    ) -> list[OffsetChange]:
        """Move `group`'s committed offsets on the partitions of `topic` (all, or only `partitions`): to "earliest",
        "latest", "timestamp" (ms since the epoch in `value`; partitions with nothing newer go to the end), "offset"
        (`value`, clamped to the partition's range), "shift" (the committed offset plus `value`, which may be
        negative, clamped to the partition's range) or "offsets" (`value` maps partition → offset, each clamped: a
        shift worked out earlier, applied again with the same result). Returns old → new per partition; with dry_run
        nothing is written.

        Refused while the group has members: Kafka itself rejects an offset commit for an active group, and a running
        consumer would overwrite the reset with its next commit. tansu reports no members ever, so there the broker's
        own refusal (or none) is all we have. Like kafka-consumer-groups.sh, a shift refuses a partition with no
        committed offset (there is nothing to shift from) and a partition the topic lacks raises ValueError.
        """
        if to not in ("earliest", "latest", "timestamp", "offset", "shift", "offsets"):
            raise ValueError(f"unknown reset target {to!r}")
        if to in ("timestamp", "offset", "shift", "offsets") and value is None:
            raise ValueError(f"a reset to {to} needs a value")
        if to == "offsets":
            value = {int(partition): int(offset) for partition, offset in dict(value).items()}
            partitions = sorted(value)
        members = {g.name: g.members for g in self.consumer_groups()}.get(group, 0)
        if members:
            raise BrokerError(f"group {group!r} has {members} active member(s); stop its consumers first")
        current = self.group_offsets(group, topics=[topic])
        if partitions is not None:
            chosen = set(partitions)
            missing = sorted(chosen - {o.partition for o in current})
            if missing:
                have = len(current)
                raise ValueError(
                    f"topic {topic!r} has no partition {', '.join(map(str, missing))} (it has {have}: 0–{have - 1})"
                )
            current = [o for o in current if o.partition in chosen]
        keys = [(o.topic, o.partition) for o in current]
        earliest = self.end_offsets(keys, "earliest")
        latest = {(o.topic, o.partition): o.end for o in current}
        if to == "earliest":
            targets = earliest
        elif to == "latest":
            targets = latest
        elif to == "timestamp":
            found = self.end_offsets(keys, str(value))
            targets = {k: latest[k] if found[k] < 0 else found[k] for k in keys}
        elif to == "offset":
            targets = {k: min(max(int(value), earliest[k]), latest[k]) for k in keys}
        elif to == "offsets":
            targets = {k: min(max(value[k[1]], earliest[k]), latest[k]) for k in keys}
        else:
            unset = [o.partition for o in current if o.committed is None]
            if unset:
                raise BrokerError(
                    f"group {group!r} has no committed offset on {topic!r} partition {', '.join(map(str, unset))} "
                    "to shift from; reset those to earliest, latest or an offset first, or leave them out"
                )
            targets = {
                (o.topic, o.partition): min(max(o.committed + int(value), earliest[(o.topic, o.partition)]), o.end)
                for o in current
            }
        changes = [OffsetChange(o.topic, o.partition, o.committed, targets[(o.topic, o.partition)]) for o in current]
        if dry_run or not changes:
            return changes
        request = [ConsumerGroupTopicPartitions(group, [TopicPartition(c.topic, c.partition, c.new) for c in changes])]
        try:
            self._admin.get().alter_consumer_group_offsets(request, request_timeout=REQUEST_TIMEOUT)[group].result()
        except KafkaException as exc:
            raise BrokerError(f"resetting offsets of group {group!r}: {exc.args[0].str()}") from exc
        return changes

    def commit_offsets(self, group: str, offsets: dict[tuple[str, int], int]) -> None:
        """Commit offsets for a group without joining it (benchmarks and tests set up lag this way)."""
        request = [ConsumerGroupTopicPartitions(group, [TopicPartition(t, p, o) for (t, p), o in offsets.items()])]
        try:
            self._admin.get().alter_consumer_group_offsets(request, request_timeout=REQUEST_TIMEOUT)[group].result()
        except KafkaException as exc:
            raise BrokerError(f"committing offsets of group {group!r}: {exc.args[0].str()}") from exc

    # --- dead letters (issue #4): retention warnings ---

    def pending_age(self, destination: str, group: str) -> PendingAge:
        """The group's committed offset per partition is the first message not consumed; its timestamp, read by
        offset, against the topic's retention.ms (DescribeConfigs)."""
        retention_ms = int(self.topic_config(destination).get("retention.ms", -1))
        retention = retention_ms // 1000 if retention_ms > 0 else None
        offsets = self.group_offsets(group, topics=[destination])
        earliest = self.end_offsets([(o.topic, o.partition) for o in offsets], "earliest")
        oldest = None
        for o in offsets:
            start = max(o.committed or 0, earliest.get((o.topic, o.partition), 0))
            if start >= o.end:
                continue  # everything on this partition is consumed
            message = self.message_at(o.topic, o.partition, start, timeout=3)
            if message is not None and message.timestamp and (oldest is None or message.timestamp < oldest):
                oldest = message.timestamp
        return PendingAge(retention, oldest)

    def topic_config(self, name: str) -> dict[str, str]:
        """Topic `name`'s effective configuration (retention.ms, cleanup.policy, ...) through DescribeConfigs."""
        resource = ConfigResource(ConfigResource.Type.TOPIC, name)
        try:
            entries = self._admin.get().describe_configs([resource], request_timeout=REQUEST_TIMEOUT)[resource].result()
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise DestinationNotFound(f"no Kafka topic {name!r}") from exc
            raise BrokerError(f"configuration of topic {name!r}: {exc.args[0].str()}") from exc
        return {key: entry.value for key, entry in entries.items() if entry.value is not None}

    def message_at(self, topic: str, partition: int, offset: int, timeout: float = 5.0) -> Message | None:
        """The message at one offset (or the next one after it), read with assign() so no group moves; None if
        the partition has nothing from there on within the timeout."""
        consumer = Consumer(
            self._client_config(
                exclude=PRODUCER_ONLY,
                **{"group.id": f"switchyard-read-{uuid.uuid4().hex}", "enable.auto.commit": False},
            )
        )
        try:
            consumer.assign([TopicPartition(topic, partition, offset)])
            deadline = time.monotonic() + timeout
            while (remaining := deadline - time.monotonic()) > 0:
                msg = consumer.poll(min(remaining, 0.2))
                if msg is None:
                    continue
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise BrokerError(f"reading {topic}[{partition}]@{offset}: {msg.error().str()}")
                return _to_message(msg)
            return None
        finally:
            consumer.close()

    # --- outbox (issue #5) ---

    def set_topic_config(self, name: str, **config: Any) -> None:
        """Set topic-level settings (e.g. max.message.bytes) with IncrementalAlterConfigs; others stay as they are."""
        entries = [
            ConfigEntry(key, str(value), incremental_operation=AlterConfigOpType.SET) for key, value in config.items()
        ]
        resource = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=entries)
        try:
            self._admin.get().incremental_alter_configs([resource], request_timeout=REQUEST_TIMEOUT)[resource].result()
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise DestinationNotFound(f"no Kafka topic {name!r}") from exc
            raise BrokerError(f"configuring topic {name!r}: {exc.args[0].str()}") from exc

    # --- monitoring (issue #6, round 3) ---

    def committed_offsets_many(self, groups: Iterable[str]) -> dict[str, dict[tuple[str, int], int | None]]:
        """committed_offsets() of many groups: every OffsetFetch is sent at once on the one admin client and the
        answers collected after, instead of a thread per group contending for two cores (bench/consumers.py)."""
        admin = self._admin.get()
        futures = {
            group: admin.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(group)], request_timeout=REQUEST_TIMEOUT
            )[group]
            for group in groups
        }
        found = {}
        for group, future in futures.items():
            try:
                answer = future.result()
            except KafkaException as exc:
                raise BrokerError(f"offsets of group {group!r}: {exc.args[0].str()}") from exc
            found[group] = {
                (tp.topic, tp.partition): tp.offset if tp.offset >= 0 else None for tp in answer.topic_partitions or []
            }
        return found


# librdkafka's own error codes, most telling first: an authentication or TLS failure explains the transport failure
# and the timeout that follow it.
_ERROR_RANK = {
    KafkaError._AUTHENTICATION: 0,
    KafkaError.SASL_AUTHENTICATION_FAILED: 0,
    KafkaError._SSL: 1,
    KafkaError._RESOLVE: 2,
    KafkaError._TRANSPORT: 3,
    KafkaError._TIMED_OUT: 4,
}


def _kafka_reason(error: KafkaError) -> str:
    code = error.code()
    if code in (KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED):
        return AUTH_REFUSED
    if code == KafkaError._RESOLVE:
        return HOST_UNKNOWN
    reason = reason_for(Exception(error.str()))
    if code == KafkaError._SSL and reason not in (CERT_NOT_TRUSTED, CERT_REJECTED):
        return ERROR
    if code == KafkaError._TIMED_OUT and reason == ERROR:
        return TIMED_OUT
    return reason


class KafkaSubscription(Subscription):
    def __init__(self, consumer: Consumer, destination: str):
        self._consumer = consumer
        self.destination = destination

    def poll(self, max_messages: int = 100, timeout: float = 1.0) -> list[Message]:
        found = []
        for msg in self._consumer.consume(num_messages=max_messages, timeout=timeout):
            if msg.error():
                code = msg.error().code()
                if code == KafkaError._PARTITION_EOF:
                    continue
                if code in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC):
                    raise DestinationNotFound(f"consuming {self.destination!r}: {msg.error().str()}")
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


class KafkaPending(PendingPublish):
    """One batch produced and not yet confirmed. Delivery reports are served by whichever thread polls the shared
    producer (this batch's result(), another batch's produce loop); each report lands in this batch's own list, whose
    append is atomic, so consecutive or concurrent batches never mix or lose a report."""

    def __init__(self, producer: Producer, messages: list[OutgoingMessage]):
        self._producer = producer
        self._messages = messages
        self._reports: list[tuple[int, Any, Any]] = []  # (index, error text or None, delivered message)
        report = self._reports.append
        for index, message in enumerate(messages):
            headers = _kafka_headers(message.headers)
            callback = partial(_on_delivery, report, index)
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
                    report((index, exc.args[0].str(), None))
                    break
            producer.poll(0)

    def result(self) -> list[PublishResult]:
        total = len(self._messages)
        # When nothing but this batch is still queued, wait with flush() in short slices: a slice serves delivery
        # reports like poll(), and while it runs librdkafka sends what is queued at once instead of after
        # linger.ms. The batch is complete, nothing more will join it, and the caller (the relay) waits for its
        # confirmation. Only slices, and only then: a whole flush() would also wait for other threads' (and later
        # batches') messages, and hurrying a pipelined replay's next batch out in small requests cost it about 7 %
        # of its throughput (broker CPU per message 29.5 → 47 µs). len(producer) counts every message not yet
        # reported, ours included.
        deadline = time.monotonic() + DELIVERY_TIMEOUT
        while (waiting := total - len(self._reports)) > 0 and time.monotonic() < deadline:
            if len(self._producer) <= waiting:
                self._producer.flush(0.05)
            else:
                self._producer.poll(0.05)
        results: list[PublishResult | None] = [None] * total
        errors: dict[int, str] = {}
        for index, error, msg in list(self._reports):
            if error is not None:
                errors[index] = error
            else:
                results[index] = PublishResult(msg.topic(), None, msg.partition(), msg.offset())
        failures = [
            (message, errors.get(index, "no delivery report in time"))
            for index, message in enumerate(self._messages)
            if results[index] is None
        ]
        if failures:
            raise PublishError("Kafka did not confirm every message", failures, [r for r in results if r])
        return results  # type: ignore[return-value]


def _on_delivery(report, index: int, err, msg) -> None:
    report((index, err.str() if err is not None else None, msg))


def _kafka_headers(headers) -> dict | list | None:
    """confluent-kafka takes str or bytes header values as they are; anything else goes through header_bytes."""
    if not headers:
        return None
    for value in headers.values():
        if value.__class__ is not bytes and value.__class__ is not str:
            return [(k, header_bytes(v)) for k, v in headers.items()]
    return headers


def _to_message(msg) -> Message:
    """A consumed record as a Message. Never raises: a tombstone (value None) has an empty body, header values that
    are None are empty, a timestamp no datetime can hold is None, and what could not be read is named in
    parse_error."""
    problems: list[str] = []
    ts_type, ts_ms = msg.timestamp()
    timestamp = None if ts_type == TIMESTAMP_NOT_AVAILABLE else epoch_datetime(ts_ms / 1000)
    if ts_type != TIMESTAMP_NOT_AVAILABLE and timestamp is None:
        problems.append(f"timestamp {ts_ms} ms is outside the range of dates")
    try:
        pairs = msg.headers() or []
    except (UnicodeDecodeError, ValueError, TypeError) as exc:  # confluent-kafka decodes header names as UTF-8
        pairs = []
        problems.append(f"headers could not be read: {exc}")
    # Kafka allows repeated header names; the interface has a dict, so the last value wins.
    headers = {
        name if isinstance(name, str) else bytes(name).decode("utf-8", "backslashreplace"): header_bytes(value)
        for name, value in pairs
    }
    value, key = msg.value(), msg.key()
    return Message(
        destination=msg.topic(),
        body=b"" if value is None else bytes(value),
        key=None if key is None else bytes(key),
        headers=headers,
        message_id=None,  # Kafka has no message id; (partition, offset) identifies a message
        partition=msg.partition(),
        offset=msg.offset(),
        timestamp=timestamp,
        parse_error="; ".join(problems) or None,
    )
