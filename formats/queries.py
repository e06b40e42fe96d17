"""Reads for the catalogue pages and API: event types with their versions, and one type in full."""

from __future__ import annotations

from collections import defaultdict

from formats.catalogue import version_key
from formats.models import GroupMismatch, SchemaVersion


def event_types() -> list[dict]:
    by_type: dict[str, list[SchemaVersion]] = defaultdict(list)
    for v in SchemaVersion.objects.all():
        by_type[v.event_type].append(v)
    mismatched = defaultdict(int)
    for event_type in GroupMismatch.objects.values_list("event_type", flat=True):
        mismatched[event_type] += 1
    out = []
    for event_type, versions in sorted(by_type.items()):
        versions.sort(key=lambda v: version_key(v.version))
        out.append(
            {
                "event_type": event_type,
                "versions": [v.version for v in versions],
                "current": versions[-1].version,
                "kind": versions[-1].kind,
                "first_seen": min(v.first_seen for v in versions),
                "last_seen": max(v.last_seen for v in versions),
                "destinations": sorted({d for v in versions for d in v.destinations}),
                "producers": sorted({p for v in versions for p in v.producers}),
                "seen": sum(v.seen for v in versions),
                "failed": sum(v.failed for v in versions),
                "mismatched_groups": mismatched[event_type],
            }
        )
    return out


def type_json(row: dict) -> dict:
    return {**row, "first_seen": row["first_seen"].isoformat(), "last_seen": row["last_seen"].isoformat()}


def mismatches(event_type: str) -> list[GroupMismatch]:
    return list(GroupMismatch.objects.filter(event_type=event_type).order_by("fingerprint"))


def mismatch_json(m: GroupMismatch) -> dict:
    return {"group": m.fingerprint, "version": m.version, "fields": m.fields}


def flag_mismatches(groups: list[dict]) -> list[dict]:
    """Dead-letter groups (as the API gives them) with their "schema_mismatch" (None when they match), one query."""
    found = {m.fingerprint: m for m in GroupMismatch.objects.filter(fingerprint__in=[g["fingerprint"] for g in groups])}
    for g in groups:
        m = found.get(g["fingerprint"])
        g["schema_mismatch"] = {"event_type": m.event_type, **mismatch_json(m)} if m else None
    return groups
