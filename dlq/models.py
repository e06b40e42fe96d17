"""Dead letters copied out of the brokers' DLQs, grouped by fingerprint, replayed through operations."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.postgres.indexes import BrinIndex, GinIndex
from django.contrib.postgres.search import SearchVector
from django.db import models
from django.urls import reverse

from dlq import headers as h
from dlq.conventions import LABELS as CONVENTION_LABELS

BROKERS = [("kafka", "Kafka"), ("sqs", "SQS"), ("rabbitmq", "RabbitMQ"), ("nats", "NATS JetStream")]


class DeadLetterSource(models.Model):
    """One broker DLQ that Switchyard ingests: found by discovery or added by an admin."""

    class Kind(models.TextChoices):
        DISCOVERED = "discovered"
        MANUAL = "manual"

    broker = models.CharField(max_length=20, choices=BROKERS)  # the kind of connection
    # Its name (brokers.connections). db_default: rows written by code that predates connections (a rolling
    # upgrade) land on the default connection, as the migration put the existing ones.
    connection = models.CharField(max_length=63, default="default", db_default="default")
    destination = models.CharField(max_length=500)  # the DLQ: topic, queue or stream
    origin = models.CharField(max_length=500, blank=True)  # where its messages came from, when the broker says
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.MANUAL)
    enabled = models.BooleanField(default=True)
    # Per-framework differences: {"headers": {"exception_type": [...]}, "suffix": ".DLQ", "visibility_timeout": 30}
    conventions = models.JSONField(default=dict, blank=True)
    retention_seconds = models.IntegerField(null=True, blank=True)  # the broker's own retention of the DLQ
    last_ingest_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    # Written by the ingest worker: failures in a row (cleared by a poll that works), when it polls next (None: at
    # once), and since when the DLQ no longer exists on its broker (cleared when a poll works or discovery finds it).
    consecutive_failures = models.IntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    gone_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Written by dlq.retention.check() (a beat job), so pages and the API never wait on a broker round trip.
    oldest_pending_at = models.DateTimeField(null=True, blank=True)  # oldest message still in the broker DLQ
    retention_warning = models.TextField(blank=True)
    retention_checked_at = models.DateTimeField(null=True, blank=True)
    # The framework convention (dlq.conventions) its latest recognised dead letters follow; written by ingest.
    # db_default: a not-yet-upgraded process inserting without this column during a rolling upgrade (ADR 0048).
    convention = models.CharField(max_length=40, blank=True, default="", db_default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["broker", "connection", "destination"], name="dlq_source_unique")
        ]
        ordering = ["broker", "connection", "destination"]

    def __str__(self) -> str:
        return f"{self.connection_key}/{self.destination}"

    @property
    def connection_key(self) -> str:
        return f"{self.broker}:{self.connection}"

    def adapter(self):
        """The adapter of this source's connection (console.brokers.NotConfigured when it is gone from the file)."""
        from console import brokers

        return brokers.get(self.broker, self.connection)

    def warning_json(self) -> dict:
        return {
            "source": str(self),
            "broker": self.broker,
            "connection": self.connection_key,
            "destination": self.destination,
            "kind": "retention",
            "message": self.retention_warning,
            "retention_seconds": self.retention_seconds,
            "oldest_pending_at": self.oldest_pending_at.isoformat() if self.oldest_pending_at else None,
            "checked_at": self.retention_checked_at.isoformat() if self.retention_checked_at else None,
        }

    def state(self) -> str:
        """ "gone" (the DLQ no longer exists), "failing" (its last poll failed) or "ok"."""
        if self.gone_since is not None:
            return "gone"
        return "failing" if self.last_error else "ok"

    def default_origin(self) -> str:
        """The origin a message without origin headers came from: the configured one, else the name minus suffix."""
        if self.origin:
            return self.origin
        conventions = self.conventions if isinstance(self.conventions, dict) else {}  # an admin's JSON, any shape
        for suffix in conventions.get("suffixes") or settings.DLQ_SUFFIXES:
            if self.destination.endswith(suffix):
                return self.destination[: -len(suffix)]
        return ""

    def convention_label(self) -> str:
        return CONVENTION_LABELS.get(self.convention, self.convention)

    def dead_letter_mapping(self) -> dict | None:
        """The mapping the connections file gives this DLQ (`dead_letters`, by its name or a glob), as rules for
        dlq.conventions; None when it gives none or the connection is gone."""
        from console import brokers

        try:
            mappings = getattr(brokers.connection(self.broker, self.connection).spec, "dead_letters", None) or {}
        except brokers.NotConfigured:
            return None
        mapping = mappings.get(self.destination)
        if mapping is None:
            mapping = next((m for glob, m in mappings.items() if fnmatch.fnmatchcase(self.destination, glob)), None)
        return mapping.rules() if mapping is not None else None


class DeadLetter(models.Model):
    class Status(models.TextChoices):
        NEW = "new"
        REPLAYED = "replayed"
        ARCHIVED = "archived"
        DISCARDED = "discarded"

    source = models.ForeignKey(DeadLetterSource, on_delete=models.PROTECT, related_name="dead_letters")
    origin = models.CharField(max_length=500, blank=True)
    # Where the message was in its origin when it failed (Spring Kafka, Kafka Connect: the original partition and
    # offset), and where it failed: consumer group, connector and task, consumer, endpoint or function.
    origin_partition = models.IntegerField(null=True, blank=True)
    origin_offset = models.BigIntegerField(null=True, blank=True)
    failed_in = models.CharField(max_length=300, blank=True, default="", db_default="")
    # dlq.conventions: which framework's it is. db_default here and on failed_in: the previous release inserts rows
    # without them while a rolling upgrade is under way (deploy/k8s/README.md).
    convention = models.CharField(max_length=40, blank=True, default="", db_default="")
    message_id = models.CharField(max_length=300)  # broker message id; Kafka: "partition:offset"; NATS: sequence
    partition = models.IntegerField(null=True, blank=True)
    offset = models.BigIntegerField(null=True, blank=True)
    key = models.BinaryField(null=True, blank=True)
    headers = models.JSONField(default=dict)  # name -> text, or {"base64": ...} for bytes that are not text
    body = models.BinaryField(null=True, blank=True)  # None when the body is in DeadLetterBody (too big for a row)
    body_size = models.IntegerField(default=0)
    body_text = models.TextField(blank=True)  # a text prefix of the body for full-text search
    # The body as formats/ decoded it at ingest (Avro, Protobuf, JSON Schema, CloudEvents, compression; ADR 0051):
    # {"decoder", "schema": {id, subject, version, name}, "cloudevent", "compression", "value", "error"}. None when
    # the body is plain text or JSON and needed no decoder.
    decoded = models.JSONField(null=True, blank=True)
    content_type = models.CharField(max_length=200, blank=True)
    message_type = models.CharField(max_length=300, blank=True)
    exception_type = models.CharField(max_length=300, blank=True)
    exception_message = models.TextField(blank=True)
    stacktrace = models.TextField(blank=True)
    reason = models.CharField(max_length=100, blank=True)
    correlation_id = models.CharField(max_length=200, blank=True)
    # What of the message could not be read (its headers, body encoding, failure facts); the message is stored with
    # its body and headers as they came all the same. Empty when everything was understood.
    parse_error = models.TextField(blank=True)
    first_failure_at = models.DateTimeField()
    last_failure_at = models.DateTimeField()
    delivery_count = models.IntegerField(null=True, blank=True)
    fingerprint = models.CharField(max_length=40, db_index=True)
    # Not indexed, so a replay's status UPDATE can be a HOT update (no index touched; ADR 0024): the column has a
    # handful of values, and lists filter it alongside an indexed condition or the keyset on id.
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.NEW)
    replay_count = models.IntegerField(default=0)
    # Set when this dead letter is a replayed message that failed again (read from x-switchyard-replay-of).
    replay_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="refailures")
    status_changed_at = models.DateTimeField(null=True, blank=True)
    ingested_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "message_id"], name="dlq_dead_letter_unique")]
        indexes = [
            GinIndex(fields=["headers"], name="dlq_headers_gin"),
            GinIndex(SearchVector("body_text", config="simple"), name="dlq_body_search"),
            models.Index(fields=["fingerprint", "-id"], name="dlq_group_recent"),
            # Plus, where the server has pg_trgm, a trigram index for "exception message contains" (migration 0004,
            # kept out of the model's state because it may not exist). It about doubles the cost of an ingest INSERT
            # (measured on 20,000 rows); replay's status UPDATEs stay HOT (ADR 0024): they change neither that
            # column nor correlation_id.
            models.Index(fields=["correlation_id"], name="dlq_correlation", condition=~models.Q(correlation_id="")),
            # since/until: rows arrive in about the order they failed, so a block-range index finds a time window
            # for a few kilobytes per million rows and next to nothing per INSERT (a B-tree costs both; ADR 0048).
            BrinIndex(fields=["last_failure_at"], name="dlq_failure_brin", autosummarize=True),
        ]

    def __str__(self) -> str:
        return f"dead letter {self.pk} from {self.origin or self.source}"

    def get_absolute_url(self) -> str:
        return reverse("dlq_detail", args=[self.pk])

    @staticmethod
    def compute_fingerprint(exception_type: str, message_type: str, origin: str) -> str:
        raw = json.dumps([exception_type, message_type, origin])
        return hashlib.sha1(raw.encode(), usedforsecurity=False).hexdigest()[:16]

    def fingerprint_value(self) -> str:
        """exception type + message type + origin: the same failure of the same message from the same place."""
        return self.compute_fingerprint(self.exception_type, self.message_type, self.origin)

    def body_bytes(self) -> bytes:
        if self.body is not None:
            return bytes(self.body)
        large = DeadLetterBody.objects.filter(dead_letter=self).values_list("data", flat=True).first()
        return bytes(large) if large is not None else b""

    def header_bytes(self) -> dict[str, bytes]:
        return h.decode_headers(self.headers)

    def header_values(self) -> dict[str, str | bytes]:
        return h.header_values(self.headers)

    def key_bytes(self) -> bytes | None:
        return bytes(self.key) if self.key is not None else None

    def event_id(self) -> str:
        """The producing event's id (`x-event-id`, which the outbox relay sets), if the message carries one."""
        value = next((v for k, v in self.headers.items() if k.lower() == h.EVENT_ID), "")
        return value if isinstance(value, str) else ""

    def saga(self):
        """The saga this message belongs to, by correlation id (the most recent one, ids can be reused)."""
        from sagas.models import SagaInstance  # models only: the arrow from dlq to sagas stays at the data

        if not self.correlation_id:
            return None
        return SagaInstance.objects.filter(correlation_id=self.correlation_id).order_by("-started_at").first()

    def outbox_event(self):
        """The outbox event that produced this message, by its x-event-id header."""
        from outbox.models import OutboxEvent

        try:
            event_id = uuid.UUID(self.event_id())
        except ValueError:
            return None
        return OutboxEvent.objects.filter(event_id=event_id).defer("payload").first()

    @property
    def decoded_text(self) -> str | None:
        """The decoded value as the page shows it (pretty JSON or text), None when there is none."""
        from formats.decode import pretty

        if not self.decoded or self.decoded.get("value") is None:
            return None
        return pretty(self.decoded)

    def is_json(self) -> bool:
        return "json" in self.content_type.lower() or self.body_text[:1] in ("{", "[")

    def can_replay(self, override: bool = False) -> bool:
        return replayable(self.status, self.replay_count, override)

    def purge_at(self) -> datetime | None:
        """When the purge job (dlq.actions.purge, hourly) may delete this archived or discarded letter; None: never."""
        if self.status not in PURGEABLE or self.status_changed_at is None:
            return None
        return self.status_changed_at + timedelta(days=settings.DLQ_RETENTION_DAYS)

    def convention_label(self) -> str:
        return CONVENTION_LABELS.get(self.convention, self.convention)

    def replay_destination(self) -> tuple[str, str]:
        """(connection key, destination) a replay goes to by default: the origin on the source's connection."""
        return self.source.connection_key, self.origin

    def as_json(self, full: bool = False) -> dict:
        data = {
            "id": self.pk,
            "source": str(self.source),
            "broker": self.source.broker,
            "connection": self.source.connection_key,
            "origin": self.origin,
            "origin_partition": self.origin_partition,
            "origin_offset": self.origin_offset,
            "failed_in": self.failed_in,
            "convention": self.convention,
            "message_id": self.message_id,
            "partition": self.partition,
            "offset": self.offset,
            "content_type": self.content_type,
            "message_type": self.message_type,
            "exception_type": self.exception_type,
            "exception_message": self.exception_message[:500],
            "fingerprint": self.fingerprint,
            "status": self.status,
            "replay_count": self.replay_count,
            "delivery_count": self.delivery_count,
            "body_size": self.body_size,
            "parse_error": self.parse_error,
            "first_failure_at": self.first_failure_at.isoformat(),
            "last_failure_at": self.last_failure_at.isoformat(),
            "ingested_at": self.ingested_at.isoformat() if self.ingested_at else None,
            "purge_at": purge_at.isoformat() if (purge_at := self.purge_at()) else None,
        }
        if full:
            data["headers"] = self.headers
            data["stacktrace"] = self.stacktrace
            data["correlation_id"] = self.correlation_id
            data["replay_of"] = self.replay_of_id
            data["body_text"] = self.body_text[:100_000]
            data["decoded"] = self.decoded
        return data


# Archived and discarded letters are the purge's to delete, and the ones a restore can bring back to new.
PURGEABLE = (DeadLetter.Status.ARCHIVED, DeadLetter.Status.DISCARDED)


def replayable(status: str, replay_count: int, override: bool = False) -> bool:
    """The loop guard: a dead letter replayed DLQ_MAX_REPLAYS times goes again only with an explicit override."""
    return status in (DeadLetter.Status.NEW, DeadLetter.Status.REPLAYED) and (
        override or replay_count < settings.DLQ_MAX_REPLAYS
    )


class DeadLetterBody(models.Model):
    """Bodies over DLQ_INLINE_BODY_MAX live here, so list queries never drag megabytes through the row."""

    dead_letter = models.OneToOneField(DeadLetter, on_delete=models.CASCADE, primary_key=True, related_name="large")
    data = models.BinaryField()

    def __str__(self) -> str:
        return f"body of dead letter {self.dead_letter_id}"


class ReplayRecord(models.Model):
    """One replay of one dead letter: the history shown on its detail page and the loop guard's count."""

    # No database-level foreign keys: their triggers check (and share-lock) the referenced row once per record, which
    # was most of a replay batch's COPY; the records are only ever written by the replay, for rows it just read,
    # and Django still cascades or nulls them when a dead letter, operation or user is deleted (ADR 0024).
    dead_letter = models.ForeignKey(DeadLetter, on_delete=models.CASCADE, related_name="replays", db_constraint=False)
    operation = models.ForeignKey(
        "console.Operation", null=True, blank=True, on_delete=models.SET_NULL, db_constraint=False
    )
    broker = models.CharField(max_length=20)
    connection = models.CharField(max_length=63, default="default", db_default="default")
    destination = models.CharField(max_length=500)
    dry_run = models.BooleanField(default=False)
    edited = models.BooleanField(default=False)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, db_constraint=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["operation", "dead_letter"], name="dlq_replay_op")]

    def __str__(self) -> str:
        return f"replay of {self.dead_letter_id} to {self.broker}:{self.connection}/{self.destination}"


class ProcessedMessage(models.Model):
    """consumer_kit's idempotency table: a handler's transaction inserts its message id here, once."""

    consumer = models.CharField(max_length=200)
    message_id = models.CharField(max_length=300)
    processed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["consumer", "message_id"], name="dlq_processed_unique")]

    def __str__(self) -> str:
        return f"{self.consumer}: {self.message_id}"
