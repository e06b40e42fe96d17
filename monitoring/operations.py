"""The Kafka offset reset, run as an Operation so it is tracked, audited and visible live."""

import re
from datetime import UTC, datetime, timedelta

from django.utils.dateparse import parse_datetime

from brokers.base import Capability
from console import brokers
from console.operations import ParameterError, register

# "datetime" is what the page's date-time input sends; it is stored as "timestamp" in epoch ms like the API's.
TARGETS = ("earliest", "latest", "timestamp", "datetime", "offset", "shift")
MAX_PARTITIONS = 10_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The last millisecond of year 9999: larger numbers are typos, and past 2^63 the broker request cannot carry them.
MAX_EPOCH_MS = 253_402_300_799_999


def validate_reset(params: dict) -> dict:
    """Checked and normalised parameters: a date-time (ISO 8601, UTC when it names no offset) becomes "timestamp"
    in epoch ms, and `partitions` a sorted list (None = every partition of the topic)."""
    errors: dict[str, list[str]] = {}
    group, topic, to = params.get("group"), params.get("topic"), params.get("to")
    if not isinstance(group, str) or not group.strip():
        errors["group"] = ["a consumer group is required"]
    if not isinstance(topic, str) or not topic.strip():
        errors["topic"] = ["a topic is required"]
    if to not in TARGETS:
        errors["to"] = [f"must be one of: {', '.join(TARGETS)}"]
    value = params.get("value")
    if to in ("timestamp", "datetime"):
        value = _epoch_ms(value)
        if value is None:
            errors["value"] = ["give a time as epoch milliseconds or ISO 8601, e.g. 2026-11-26T09:30:00Z"]
        to = "timestamp"
    elif to in ("offset", "shift"):
        value = _integer(value)
        if value is None or (to == "offset" and value < 0):
            kind = "an integer (negative rewinds, positive skips)" if to == "shift" else "a non-negative integer"
            errors["value"] = [f"a reset to {to} needs {kind}"]
    else:
        value = None
    partitions = _partitions(params.get("partitions"))
    if partitions is False:
        errors["partitions"] = ["a list of partition numbers (e.g. 0,2), or empty for every partition"]
    connection = _connection(params.get("connection"), errors)
    if errors:
        raise ParameterError(errors)
    clean = {"group": group.strip(), "topic": topic.strip(), "to": to, "value": value, "partitions": partitions}
    return {**clean, "connection": connection}


def _connection(value, errors: dict) -> str | None:
    """The name of the connection whose group is reset: "kafka:prod-eu", "prod-eu", or empty for the default one;
    it must be able to reset offsets (asked of its adapter, not assumed from its kind)."""
    if value is not None and not isinstance(value, str):
        errors["connection"] = ["must be a connection name"]
        return None
    kind, colon, name = (value or "").partition(":")
    if not colon:  # a bare name, or nothing: a connection of the kind that has consumer groups
        kind, name = "kafka", "" if kind == "kafka" else kind
    try:
        conn = brokers.connection(kind, name or None)
    except brokers.NotConfigured as e:
        errors["connection"] = [str(e)]
        return None
    if not conn.adapter().supports(Capability.OFFSET_RESET):
        errors["connection"] = [f"{conn.key} cannot reset consumer-group offsets"]
        return None
    return conn.name


def _integer(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,19}\s*", value):
        return int(value)
    return None


def _epoch_ms(value) -> int | None:
    ms = _integer(value)
    if ms is not None:
        return ms if 0 <= ms <= MAX_EPOCH_MS else None
    if not isinstance(value, str):
        return None
    try:
        when = parse_datetime(value.strip())
    except ValueError:  # well formed but impossible, e.g. month 13
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    # Integer arithmetic: a float timestamp × 1000 can land one millisecond early.
    ms = (when - EPOCH) // timedelta(milliseconds=1)
    return ms if ms >= 0 else None


def _partitions(value) -> list[int] | None | bool:
    """None for every partition, a sorted list, or False when `value` is not a list of partition numbers. The page
    sends "0, 2" as text; the API a JSON list."""
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, str):
        value = [v for v in re.split(r"[\s,]+", value.strip()) if v]
    if not isinstance(value, list) or len(value) > MAX_PARTITIONS:
        return False
    numbers = [_integer(v) for v in value]
    if any(n is None or n < 0 for n in numbers):
        return False
    return sorted(set(numbers))


def describe_changes(changes) -> tuple[list[dict], int]:
    """Each change as a dict with `delta`: new − old, the messages the group will re-read (negative) or skip
    (positive); None where nothing was committed, since where such a group starts depends on its consumers'
    auto.offset.reset. Returns the rows and the total of the known deltas."""
    rows = []
    for c in changes:
        delta = c.new - c.old if c.old is not None else None
        rows.append({"topic": c.topic, "partition": c.partition, "old": c.old, "new": c.new, "delta": delta})
    return rows, sum(r["delta"] for r in rows if r["delta"] is not None)


def reset_time(params: dict) -> datetime | None:
    """The time a "timestamp" reset goes to, for showing next to its epoch ms."""
    if params.get("to") != "timestamp" or params.get("value") is None:
        return None
    return datetime.fromtimestamp(params["value"] / 1000, tz=UTC)


@register("kafka_offset_reset", label="Reset Kafka consumer-group offsets", validate=validate_reset)
def run_reset(ctx):
    # One broker call moves every partition at once; a resumed run that already did it has nothing left to do.
    if ctx.done:
        return {"note": "already applied"}
    p = ctx.params
    ctx.checkpoint(force=True)
    to, value = ("offsets", p["frozen"]) if p.get("frozen") else (p["to"], p["value"])
    changes = brokers.get("kafka", p.get("connection")).reset_offsets(
        p["group"], p["topic"], to, value, dry_run=False, partitions=p.get("partitions")
    )
    ctx.set_total(len(changes))
    ctx.advance(len(changes))
    rows, total = describe_changes(changes)
    return {"changes": rows, "total_delta": total}
