"""The schema catalogue's memory: outbox rows are purged within a day and dead letters after their retention, but what
was seen of an event type — its versions, first and last seen, where it went, who produced it, who failed on it —
is kept here, written by formats.catalogue.refresh() (a beat job, incremental by id)."""

from django.db import models


class SchemaVersion(models.Model):
    event_type = models.CharField(max_length=300)
    # "1", "2" (a schema_version field or header, the outbox's column) or the registry's version of its subject
    version = models.CharField(max_length=100)
    # What the schema is: "avro" / "json-schema" / "protobuf" text from a registry ("registered"), or "inferred" (a
    # JSON Schema inferred from the samples seen)
    kind = models.CharField(max_length=20, default="inferred")
    schema = models.JSONField(null=True, blank=True)
    registry_id = models.IntegerField(null=True, blank=True)
    subject = models.CharField(max_length=300, blank=True)
    connection = models.CharField(max_length=100, blank=True)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    destinations = models.JSONField(default=list)
    producers = models.JSONField(default=list)
    seen = models.BigIntegerField(default=0)  # outbox rows and saga events
    failed = models.BigIntegerField(default=0)  # dead letters
    # Inference state: the merged JSON Schema of the samples seen so far (capped per refresh)
    samples = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["event_type", "version"], name="formats_type_version")]
        ordering = ["event_type", "first_seen"]

    def __str__(self) -> str:
        return f"{self.event_type} v{self.version}"

    def as_json(self) -> dict:
        return {
            "event_type": self.event_type,
            "version": self.version,
            "kind": self.kind,
            "schema": self.schema,
            "registry_id": self.registry_id,
            "subject": self.subject,
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
            "destinations": self.destinations,
            "producers": self.producers,
            "seen": self.seen,
            "failed": self.failed,
        }


class GroupMismatch(models.Model):
    """A dead-letter group (fingerprint) whose bodies do not match the current version of their type."""

    fingerprint = models.CharField(max_length=40, unique=True)
    event_type = models.CharField(max_length=300)
    version = models.CharField(max_length=100)  # the current version they were compared with
    fields = models.JSONField(default=list)  # [{"field": "a.b", "why": "..."}]
    checked_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"group {self.fingerprint}: {self.event_type} v{self.version} mismatch"


class Cursor(models.Model):
    """How far refresh() has read each table (the highest id seen)."""

    name = models.CharField(max_length=50, primary_key=True)
    last_id = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name} at {self.last_id}"
