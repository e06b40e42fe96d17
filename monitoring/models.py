"""What is watched (ConsumerTarget), what was seen (Sample), and alerting (AlertRule, Incident)."""

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


class ConsumerTarget(models.Model):
    """One thing with a backlog: a Kafka group, a queue (SQS, RabbitMQ, Celery), a JetStream consumer, the outbox."""

    class Kind(models.TextChoices):
        GROUP = "group"
        QUEUE = "queue"
        CONSUMER = "consumer"
        BACKLOG = "backlog"

    broker = models.CharField(max_length=20)  # kafka | sqs | rabbitmq | nats | celery | outbox
    kind = models.CharField(max_length=10, choices=Kind.choices)
    name = models.CharField(max_length=400)  # NATS: "stream/consumer"
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
        constraints = [models.UniqueConstraint(fields=["broker", "name"], name="monitoring_target_unique")]
        ordering = ["broker", "name"]

    def __str__(self) -> str:
        return f"{self.broker}:{self.name}"

    def get_absolute_url(self) -> str:
        return reverse("consumer_detail", args=[self.broker, self.name])

    @property
    def pill(self) -> str:
        return PILL.get(self.status, "muted")

    @property
    def rank(self) -> int:
        return RANK.get(self.status, 0)

    def is_lag(self) -> bool:
        return self.kind in (self.Kind.GROUP, self.Kind.CONSUMER)

    def as_json(self) -> dict:
        out = {
            "broker": self.broker,
            "kind": self.kind,
            (
                "group" if self.kind == self.Kind.GROUP else "consumer" if self.kind == "consumer" else "queue"
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
        SAGA_STUCK = "saga_stuck", "a saga is stuck longer than T minutes"
        OUTBOX_AGE = "outbox_age", "outbox oldest event older than T minutes"
        DLQ_RETENTION = "dlq_retention", "a broker DLQ's retention is about to drop messages not yet ingested"

    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    threshold = models.IntegerField(default=0)  # X for dlq_growth; unused otherwise
    minutes = models.IntegerField(default=5)  # Y, Z or T
    webhook_url = models.URLField(blank=True)
    email = models.CharField(max_length=500, blank=True)  # comma-separated addresses
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name

    def as_json(self) -> dict:
        return {
            "id": self.pk,
            "name": self.name,
            "kind": self.kind,
            "threshold": self.threshold,
            "minutes": self.minutes,
            "webhook_url": self.webhook_url,
            "email": self.email,
            "enabled": self.enabled,
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

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "subject"], condition=models.Q(resolved_at__isnull=True), name="monitoring_one_open"
            )
        ]

    def __str__(self) -> str:
        return f"{self.rule} · {self.subject}"

    def as_json(self) -> dict:
        return {
            "rule": self.rule.name,
            "kind": self.rule.kind,
            "subject": self.subject,
            "summary": self.summary,
            "opened_at": self.opened_at.isoformat(),
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
        }
