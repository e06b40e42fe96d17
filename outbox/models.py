"""The outbox: events written in the caller's transaction and relayed to a broker afterwards.

Ordering scope is the key (the aggregate id), across destinations: events of one key go out in the order they were
written, and a failing row holds back only later rows of its key (docs/decisions/0030-outbox-ordering-and-delivery.md).
A keyless event is ordered against nothing: its `order_key` is its own event id.
"""

import base64
import hashlib
import json
import uuid

from django.db import models
from django.urls import reverse
from django.utils import timezone

from brokers.base import OutgoingMessage

BROKERS = ("kafka", "sqs", "rabbitmq", "nats")
# Header names travel on every broker; SQS allows ten message attributes, so the envelope uses at most four.
H_EVENT_ID = "x-event-id"
H_EVENT_TYPE = "x-event-type"
H_SCHEMA = "x-schema-version"
H_CORRELATION = "x-correlation-id"


# Schemes that name something a connection of another kind serves: an `sqs` connection (an AWS account and region)
# also holds its SNS topics, which its adapter names "sns:<topic>" (brokers.sns).
SCHEMES = {**{b: b for b in BROKERS}, "sns": "sqs"}


def split_destination(uri: str) -> tuple[str, str]:
    """'kafka://prod-eu/orders' -> ('kafka:prod-eu', 'orders'); 'kafka://orders' -> ('kafka', 'orders'), the kind's
    only or default connection. RabbitMQ targets are exchange/routing-key, so its connection makes a third part.
    An SNS topic is on an sqs connection: 'sns://prod/orders' -> ('sqs:prod', 'sns:orders').
    ValueError with the reason otherwise. Only the form is checked: whether the connection exists is the relay's
    (it fails the row with the reason, visible on it, rather than refusing the caller's transaction)."""
    scheme, sep, target = uri.partition("://")
    if not sep or scheme not in SCHEMES:
        raise ValueError(f"destination {uri!r} must start with one of {', '.join(b + '://' for b in SCHEMES)}")
    broker, prefix = SCHEMES[scheme], ("sns:" if scheme == "sns" else "")
    if not target or any(c.isspace() for c in target):
        raise ValueError(f"destination {uri!r} names no target")
    parts = target.split("/")
    plain = 2 if broker == "rabbitmq" else 1  # RabbitMQ's exchange may be "" (the default exchange)
    named = len(parts) == plain + 1
    if len(parts) not in (plain, plain + 1) or (named and not parts[0]) or (plain == 1 and not all(parts)):
        form = "exchange/routing-key" if broker == "rabbitmq" else "name"
        raise ValueError(f"destination {uri!r} must be {scheme}://{form} or {scheme}://connection/{form}")
    if len(parts) == plain:
        return broker, prefix + target
    return f"{broker}:{parts[0]}", prefix + target.partition("/")[2]


class OutboxCommit(models.Model):
    """When the transaction that wrote an outbox row committed, so publish latency starts at the commit, not at the
    insert (a long transaction would otherwise count against the relay). Written by a deferred constraint trigger
    (migration 0004) as the transaction commits. Postgres has no cheaper per-row commit time: now() is the
    transaction's start, track_commit_timestamp is a server setting we do not control, and a row's xmin names a
    subtransaction when publish() runs under a savepoint (nested atomic), so one note per transaction could not be
    matched to its rows. A narrow row per event, not an UPDATE of the event (a second version of a wide row)."""

    event_id = models.BigIntegerField(primary_key=True)  # OutboxEvent.id; no foreign key: purged on its own
    committed_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"outbox event {self.event_id} committed at {self.committed_at.isoformat()}"


class OutboxPayload(models.Model):
    """A claim check: a payload too large to travel through the broker, fetched by reference."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    data = models.BinaryField()
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"outbox-payload:{self.pk}"

    def reference(self) -> dict:
        return {"claim_check": f"outbox-payload:{self.pk}", "size": len(self.data), "sha256": self.sha256}

    @classmethod
    def head(cls, pk, limit: int) -> tuple[bytes, int, str] | None:
        """The first `limit` bytes, the size and the digest, without reading a large payload whole."""
        row = (
            cls.objects.filter(pk=pk)
            .annotate(
                head=models.Func(
                    "data",
                    models.Value(1),
                    models.Value(limit),
                    function="substring",
                    output_field=models.BinaryField(),
                ),
                size=models.Func("data", function="octet_length", output_field=models.BigIntegerField()),
            )
            .values_list("head", "size", "sha256")
            .first()
        )
        return None if row is None else (bytes(row[0]), row[1], row[2])


class OutboxEvent(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        PUBLISHED = "published"
        FAILED = "failed"
        SKIPPED = "skipped"

    class Encoding(models.TextChoices):
        JSON = "json"
        BYTES = "bytes"

    id = models.BigAutoField(primary_key=True)
    # Not indexed: nothing looks rows up by event_id, and a unique index on a random UUID cost every publish and every
    # mark (a non-HOT update writes all indexes) a random btree page — about a third of the mark's time
    # (docs/decisions/0031). uuid4 collisions are not a practical concern; consumers deduplicate by it.
    event_id = models.UUIDField(default=uuid.uuid4, editable=False)
    destination = models.CharField(max_length=300)
    key = models.CharField(max_length=300, blank=True, default="")
    # `key`, or "~<event_id>" for a keyless event. Byte-order collation: the relay only needs equality and a stable
    # order, and "C" sorts and compares several times faster than a language collation.
    order_key = models.CharField(max_length=300, db_collation="C")
    event_type = models.CharField(max_length=200)
    schema_version = models.PositiveIntegerField(default=1)
    headers = models.JSONField(default=dict, blank=True)
    # The payload as serialized at publish time (JSON text or raw bytes); empty when it went to a claim check.
    payload = models.BinaryField(null=True)
    encoding = models.CharField(max_length=5, choices=Encoding.choices, default=Encoding.JSON)
    # Indexed only where set (see Meta): almost every row has none, and the full index took an entry per row.
    claim_check = models.ForeignKey(OutboxPayload, null=True, blank=True, on_delete=models.SET_NULL, db_index=False)
    correlation_id = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True, default="")
    published_at = models.DateTimeField(null=True, blank=True)
    # Commit (OutboxCommit; the insert where the relay did not find the commit) → broker confirmation.
    latency_ms = models.FloatField(null=True, blank=True)

    class Meta:
        indexes = [
            # Claiming: the head of every key among rows that still block their key.
            models.Index(
                fields=["order_key", "id"],
                name="outbox_open_by_key",
                condition=models.Q(status__in=["pending", "failed"]),
            ),
            # Rates, latency percentiles and the retention purge read published rows by time.
            models.Index(fields=["published_at"], name="outbox_published_at", condition=models.Q(status="published")),
            models.Index(fields=["created_at"], name="outbox_created_at"),
            # The purge's "still referenced" check and a payload's SET_NULL on delete.
            models.Index(
                fields=["claim_check"], name="outbox_claim_check", condition=models.Q(claim_check__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id} → {self.destination}"

    def get_absolute_url(self) -> str:
        return reverse("outbox_event", args=[self.pk])

    @property
    def broker(self) -> str:
        return self.destination.partition("://")[0]

    @property
    def connection_key(self) -> str:
        """ "kafka:prod-eu", or the kind alone for its only or default connection."""
        return split_destination(self.destination)[0]

    @property
    def target(self) -> str:
        return split_destination(self.destination)[1]

    @staticmethod
    def order_key_for(key: str, event_id) -> str:
        return key or f"~{event_id}"

    def is_open(self) -> bool:
        return self.status in (self.Status.PENDING, self.Status.FAILED)

    def can_retry(self) -> bool:
        return self.status == self.Status.FAILED

    def can_skip(self) -> bool:
        return self.is_open()

    def envelope_headers(self) -> dict[str, str]:
        return envelope_headers(self.headers, self.event_id, self.event_type, self.schema_version, self.correlation_id)

    def body(self) -> bytes:
        return envelope_body(
            self.event_id,
            self.event_type,
            self.schema_version,
            self.created_at.isoformat(),
            self.correlation_id,
            self.payload,
            self.encoding,
            self.claim_check_id,
        )

    def to_message(self) -> OutgoingMessage:
        return OutgoingMessage(self.target, self.body(), self.key or None, self.envelope_headers())

    def payload_preview(self, limit: int = 2000) -> str:
        """Text for the page: never marked safe by templates; undecodable bytes shown with replacement marks."""
        if self.claim_check_id is not None:
            return f"(claim check outbox-payload:{self.claim_check_id})"
        data = bytes(self.payload or b"")
        text = data[:limit].decode("utf-8", errors="replace")
        return text + ("…" if len(data) > limit else "")

    def as_json(self) -> dict:
        return {
            "id": self.pk,
            "event_id": str(self.event_id),
            "destination": self.destination,
            "key": self.key,
            "event_type": self.event_type,
            "schema_version": self.schema_version,
            "correlation_id": self.correlation_id,
            "status": self.status,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at.isoformat() if self.status == self.Status.PENDING else None,
            "last_error": self.last_error,
            "created_at": self.created_at.isoformat(),
            "published_at": self.published_at.isoformat() if self.published_at else None,
            "latency_ms": self.latency_ms,
            "claim_check": str(self.claim_check_id) if self.claim_check_id else None,
        }


class OutboxRelay(models.Model):
    """A relay process as it last reported itself (outbox.relay.Heartbeat). The backlog alone cannot tell "nothing is
    relaying" from "relaying slowly": a growing oldest-unpublished age looks the same either way until someone
    checks the hosts. A relay stopped gracefully deletes its row; a killed one leaves it, and it goes stale."""

    # Reported every HEARTBEAT_SECONDS. A batch can hold the loop for up to the brokers' delivery timeout (35 s), so
    # a relay counts as running until it has been silent for longer than that and a beat.
    HEARTBEAT_SECONDS = 5
    STALE_SECONDS = 60

    name = models.CharField(max_length=200, primary_key=True)  # host:pid
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField()
    last_batch_at = models.DateTimeField(null=True, blank=True)
    published = models.BigIntegerField(default=0)  # since it started
    failed = models.BigIntegerField(default=0)  # failed attempts since it started

    def __str__(self) -> str:
        return self.name

    def is_running(self, now) -> bool:
        return (now - self.seen_at).total_seconds() <= self.STALE_SECONDS

    def as_json(self, now) -> dict:
        return {
            "name": self.name,
            "running": self.is_running(now),
            "started_at": self.started_at.isoformat(),
            "seen_age_seconds": round((now - self.seen_at).total_seconds(), 1),
            "last_batch_at": self.last_batch_at.isoformat() if self.last_batch_at else None,
            "published": self.published,
            "failed": self.failed,
        }


class OutboxDestinationState(models.Model):
    """Per-destination switches an operator flips; a destination without a row relays normally."""

    destination = models.CharField(max_length=300, primary_key=True)
    paused = models.BooleanField(default=False)
    changed_at = models.DateTimeField(default=timezone.now)
    changed_by = models.CharField(max_length=150, blank=True, default="")

    def __str__(self) -> str:
        return f"{self.destination} ({'paused' if self.paused else 'relaying'})"


def envelope_headers(headers, event_id, event_type: str, schema_version: int, correlation_id: str) -> dict[str, str]:
    out = {str(k): str(v) for k, v in (headers or {}).items()}
    out[H_EVENT_ID] = str(event_id)
    out[H_EVENT_TYPE] = event_type
    out[H_SCHEMA] = str(schema_version)
    if correlation_id:
        out[H_CORRELATION] = correlation_id
    return out


# Event types repeat: their JSON form is remembered (bounded, as names come from callers).
_JSON_TEXT: dict[str, bytes] = {}


def _json_text(value: str) -> bytes:
    encoded = _JSON_TEXT.get(value)
    if encoded is None:
        encoded = json.dumps(value).encode()
        if len(_JSON_TEXT) < 10_000:
            _JSON_TEXT[value] = encoded
    return encoded


def envelope_body(
    event_id,
    event_type: str,
    schema_version: int,
    occurred_at: str,
    correlation_id: str,
    payload,
    encoding,
    claim_check,
) -> bytes:
    """The JSON envelope (compact separators). A JSON payload is spliced in as stored (no decode and re-encode on the
    relay's hot path); the head is formatted, not json.dumps'd, because only event_type and correlation_id can need
    escaping (a UUID, an integer and an ISO 8601 timestamp never do).

    Plain values, not a model instance: the relay builds thousands of these a second straight from cursor rows.
    """
    prefix = b'{"event_id":"%s","event_type":%s,"schema_version":%d,"occurred_at":"%s","correlation_id":%s' % (
        str(event_id).encode(),
        _json_text(event_type),
        schema_version,
        occurred_at.encode(),
        json.dumps(correlation_id).encode() if correlation_id else b"null",
    )
    if claim_check is not None:
        ref = {"claim_check": f"outbox-payload:{claim_check}"}
        return prefix + b',"payload_ref":' + json.dumps(ref).encode() + b"}"
    data = bytes(payload or b"")
    if encoding == OutboxEvent.Encoding.JSON:
        return prefix + b',"payload":' + (data or b"null") + b"}"
    return prefix + b',"payload_base64":"' + base64.b64encode(data) + b'"}'


def payload_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
