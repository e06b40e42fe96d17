"""What is watched (ConsumerTarget), what was seen (Sample), and alerting (AlertRule, Incident)."""

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone


class Status(models.TextChoices):
    # Ordered from best to worst; `rank` below gives "worst of" for groups and tiles.
    OK = "OK"
    WARN = "WARN"
    STALL = "STALL"
    STOP = "STOP"
    REWIND = "REWIND"
    ERR = "ERR"


RANK = {s: i for i, s in enumerate(["OK", "WARN", "REWIND", "STALL", "STOP", "ERR"])}
PILL = {"OK": "ok", "WARN": "warn", "STALL": "stall", "STOP": "stop", "REWIND": "warn", "ERR": "err"}
BROKERS = ("kafka", "sqs", "rabbitmq", "nats", "celery", "outbox", "dlq")


class ConsumerTarget(models.Model):
    """One thing with a backlog: a Kafka group, a queue (SQS, RabbitMQ, Celery), a JetStream consumer, the outbox."""

    class Kind(models.TextChoices):
        GROUP = "group"
        QUEUE = "queue"
        CONSUMER = "consumer"
        BACKLOG = "backlog"
        # SNS: a topic (its subscriptions' dead letters summed) and each subscription, whose backlog is its DLQ.
        TOPIC = "topic"
        SUBSCRIPTION = "subscription"

    broker = models.CharField(max_length=20)  # kafka | sqs | rabbitmq | nats | celery | outbox | dlq
    # The broker connection's name ("" for the console's own backlogs: celery, outbox, dlq).
    connection = models.CharField(max_length=63, blank=True, default="", db_default="")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    name = models.CharField(max_length=400)  # NATS: "stream/consumer"; SNS: "sns:topic" and "sns:topic/subscription"
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OK)
    status_since = models.DateTimeField(default=timezone.now)
    reason = models.CharField(max_length=300, blank=True)  # why the status is what it is, in words
    lag = models.BigIntegerField(null=True)  # messages behind (Kafka) or backlog (queues)
    lag_seconds = models.FloatField(null=True)
    members = models.IntegerField(null=True)  # group members / queue consumers
    details = models.JSONField(default=dict)  # the latest depth fields for queues
    error = models.TextField(blank=True)
    last_sampled_at = models.DateTimeField(null=True)
    gone = models.BooleanField(default=False)  # no longer seen on the broker; kept for its history

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["broker", "connection", "name"], name="monitoring_target_unique")
        ]
        ordering = ["broker", "connection", "name"]

    def __str__(self) -> str:
        return f"{self.connection_key}/{self.name}"

    def get_absolute_url(self) -> str:
        return reverse("consumer_detail", args=[self.connection_key, self.name])

    @property
    def connection_key(self) -> str:
        """The connection, e.g. kafka:prod-eu; for the console's own backlogs: celery, outbox or dlq."""
        return f"{self.broker}:{self.connection}" if self.connection else self.broker

    @property
    def pill(self) -> str:
        return PILL.get(self.status, "muted")

    @property
    def rank(self) -> int:
        return RANK.get(self.status, 0)

    def can_reset_offsets(self) -> bool:
        """A consumer group on a connection whose adapter can move its offsets (asked, not assumed from the kind)."""
        from brokers.base import Capability
        from console import brokers

        if self.kind != self.Kind.GROUP or not self.connection:
            return False
        try:
            return brokers.get(self.broker, self.connection).supports(Capability.OFFSET_RESET)
        except brokers.NotConfigured:
            return False

    def is_lag(self) -> bool:
        return self.kind in (self.Kind.GROUP, self.Kind.CONSUMER)

    def as_json(self) -> dict:
        out = {
            "broker": self.broker,
            "connection": self.connection_key,
            "kind": self.kind,
            (
                self.kind
                if self.kind in (self.Kind.GROUP, self.Kind.CONSUMER, self.Kind.TOPIC, self.Kind.SUBSCRIPTION)
                else "queue"
            ): self.name,
            "name": self.name,
            "lag": self.lag,
            "lag_seconds": self.lag_seconds,
            "status": self.status,
            "status_since": self.status_since.isoformat(),
            "reason": self.reason,
            "members": self.members,
            "sampled_at": self.last_sampled_at.isoformat() if self.last_sampled_at else None,
            "error": self.error or None,
        }
        out.update({k: v for k, v in self.details.items() if k not in out})
        return out


class Sample(models.Model):
    """One observation. partition NULL = the target as a whole (sum over partitions for a Kafka group).

    Queue fields (depth, in_flight, ...) are NULL for Kafka; offset fields are NULL for queues.
    """

    id = models.BigAutoField(primary_key=True)
    time = models.DateTimeField()
    target = models.ForeignKey(ConsumerTarget, on_delete=models.CASCADE, related_name="samples")
    topic = models.CharField(max_length=250, blank=True)
    partition = models.IntegerField(null=True)
    lag = models.BigIntegerField(null=True)
    lag_seconds = models.FloatField(null=True)
    committed = models.BigIntegerField(null=True)  # group row: sum over partitions (rewind shows as a decrease)
    end_offset = models.BigIntegerField(null=True)
    members = models.IntegerField(null=True)
    depth = models.BigIntegerField(null=True)
    in_flight = models.BigIntegerField(null=True)
    delayed = models.BigIntegerField(null=True)
    redelivered = models.BigIntegerField(null=True)
    oldest_age_seconds = models.FloatField(null=True)
    downsampled = models.BooleanField(default=False)

    class Meta:
        indexes = [
            models.Index(fields=["target", "topic", "partition", "time"], name="monitoring_sample_series"),
            models.Index(fields=["time"], name="monitoring_sample_time"),
        ]

    def __str__(self) -> str:
        return f"{self.target_id}[{self.topic}:{self.partition}] @ {self.time:%H:%M:%S} lag={self.lag}"


class StatusTally(models.Model):
    """How many watched targets were in each status after one sampler pass: the dashboard's "consumers not OK" over
    time (a target keeps only its current status). One small row a pass, expired with the samples."""

    time = models.DateTimeField(db_index=True)
    counts = models.JSONField(default=dict)  # status -> number of targets, e.g. {"OK": 12, "WARN": 1}
    not_ok = models.IntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.time:%H:%M:%S} not OK: {self.not_ok}"


class PartitionState(models.Model):
    """The latest figures of every partition of one Kafka group, carried from one sampler pass to the next.

    Lets the sampler store a partition row only when its offsets changed (plus a heartbeat), reuse each lagging
    partition's estimated write time, and judge every partition's status without reading its history back
    (docs/decisions/0041-partition-state-between-passes.md). `partitions` maps "topic/partition" to a list laid out
    as the F_* indexes in monitoring/sampler.py.
    """

    target = models.OneToOneField(
        ConsumerTarget, on_delete=models.CASCADE, primary_key=True, related_name="partition_state"
    )
    partitions = models.JSONField(default=dict)  # only the partitions of the latest pass
    seen_at = models.FloatField(null=True)  # that pass, in seconds since the epoch
    # A digest of the offsets the latest pass saw, and what a pass seeing the same offsets needs from `partitions`
    # (ADR 0042): an unchanged group is judged from these few bytes without loading or walking its partitions.
    fingerprint = models.CharField(max_length=64, blank=True)
    summary = models.JSONField(default=dict)

    def __str__(self) -> str:
        return f"partitions of {self.target_id}"


class AlertRule(models.Model):
    class Kind(models.TextChoices):
        DLQ_GROWTH = "dlq_growth", "dead letters grow by more than X in Y minutes"
        CONSUMER_STATUS = "consumer_status", "a consumer is WARN or worse for Z minutes"
        CONSUMER_LAG = "consumer_lag", "a consumer is more than X messages or S seconds behind at the latest sample"
        SAGA_STUCK = "saga_stuck", "a saga is stuck longer than T minutes"
        SAGA_COMPENSATION_FAILED = (
            "saga_compensation_failed",
            "sagas wait for an operator: compensation failed more than T minutes ago",
        )
        OUTBOX_AGE = "outbox_age", "outbox oldest event older than T minutes"
        OUTBOX_FAILED = "outbox_failed", "more than X outbox rows failed (relay gave up) at a destination"
        OUTBOX_NO_RELAY = "outbox_no_relay", "outbox events wait and no relay has reported for T minutes"
        DLQ_RETENTION = "dlq_retention", "a broker DLQ's retention is about to drop messages not yet ingested"

    CONSUMER_KINDS = (Kind.CONSUMER_STATUS, Kind.CONSUMER_LAG)

    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    threshold = models.IntegerField(default=0)  # X for dlq_growth, consumer_lag (messages), outbox_failed
    minutes = models.IntegerField(default=5)  # Y, Z or T
    seconds = models.IntegerField(default=0)  # S for consumer_lag; 0 = no seconds threshold
    # Scope; blank = every subject. broker / connection / target_name / topic: consumer rules; saga_type,
    # destination: their rule. connection is a name of the broker's kind ("" = every connection of it).
    broker = models.CharField(max_length=20, blank=True)
    connection = models.CharField(max_length=63, blank=True, default="", db_default="")
    target_name = models.CharField(max_length=400, blank=True)  # a ConsumerTarget.name: group, queue, stream/consumer
    topic = models.CharField(max_length=250, blank=True)  # Kafka groups only
    saga_type = models.CharField(max_length=100, blank=True)
    destination = models.CharField(max_length=300, blank=True)
    webhook_url = models.URLField(blank=True)
    email = models.CharField(max_length=500, blank=True)  # comma-separated addresses
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Silenced: opens no incident and sends nothing until then (the evaluation compares with its own `now`).
    silenced_until = models.DateTimeField(null=True, blank=True)
    silenced_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+")
    silence_reason = models.TextField(blank=True)

    def __str__(self) -> str:
        return self.name

    def is_silenced(self, now) -> bool:
        return self.silenced_until is not None and self.silenced_until > now

    @property
    def silenced_now(self) -> bool:
        return self.is_silenced(timezone.now())

    def scope_display(self) -> str:
        if self.kind in self.CONSUMER_KINDS:
            where = f"{self.broker}:{self.connection}" if self.connection else self.broker
            parts = [p for p in (where, self.target_name) if p]
            if self.topic:
                parts.append(f"topic {self.topic}")
            return " · ".join(parts) or "every consumer"
        if self.kind == self.Kind.SAGA_COMPENSATION_FAILED:
            return f"saga type {self.saga_type}" if self.saga_type else "every saga type"
        if self.kind == self.Kind.OUTBOX_FAILED:
            return self.destination or "every destination"
        return ""

    def as_json(self) -> dict:
        return {
            "id": self.pk,
            "name": self.name,
            "kind": self.kind,
            "threshold": self.threshold,
            "minutes": self.minutes,
            "seconds": self.seconds,
            "broker": self.broker,
            "connection": self.connection,
            "target_name": self.target_name,
            "topic": self.topic,
            "saga_type": self.saga_type,
            "destination": self.destination,
            "webhook_url": self.webhook_url,
            "email": self.email,
            "enabled": self.enabled,
            "silenced_until": self.silenced_until.isoformat() if self.silenced_until else None,
            "silenced_by": self.silenced_by.get_username() if self.silenced_by else None,
            "silence_reason": self.silence_reason,
        }


class Incident(models.Model):
    """One firing of a rule for one subject; notified once when opened and once when resolved."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="incidents")
    subject = models.CharField(max_length=400)  # e.g. "kafka:orders-group"
    summary = models.CharField(max_length=500)
    opened_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True)
    notified_open = models.BooleanField(default=False)
    notified_resolved = models.BooleanField(default=False)
    # "Someone is on it": who, when and what they said; it changes no notification.
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    ack_note = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "subject"], condition=models.Q(resolved_at__isnull=True), name="monitoring_one_open"
            )
        ]

    def __str__(self) -> str:
        return f"{self.rule} · {self.subject}"

    def can_acknowledge(self) -> bool:
        return self.resolved_at is None and self.acknowledged_at is None

    def as_json(self) -> dict:
        return {
            "id": self.pk,
            "rule": self.rule.name,
            "rule_id": self.rule_id,
            "kind": self.rule.kind,
            "subject": self.subject,
            "summary": self.summary,
            "opened_at": self.opened_at.isoformat(),
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "acknowledged_at": self.acknowledged_at.isoformat() if self.acknowledged_at else None,
            "acknowledged_by": self.acknowledged_by.get_username() if self.acknowledged_by else None,
            "ack_note": self.ack_note,
        }
