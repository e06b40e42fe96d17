"""The Kafka offset reset, run as an Operation so it is tracked, audited and visible live."""

from console import brokers
from console.operations import ParameterError, register

TARGETS = ("earliest", "latest", "timestamp", "offset")


def validate_reset(params: dict) -> dict:
    errors: dict[str, list[str]] = {}
    group, topic, to = params.get("group"), params.get("topic"), params.get("to")
    if not isinstance(group, str) or not group.strip():
        errors["group"] = ["a consumer group is required"]
    if not isinstance(topic, str) or not topic.strip():
        errors["topic"] = ["a topic is required"]
    if to not in TARGETS:
        errors["to"] = [f"must be one of: {', '.join(TARGETS)}"]
    value = params.get("value")
    if to in ("timestamp", "offset"):
        try:
            value = int(value)
            if value < 0:
                raise ValueError
        except (TypeError, ValueError):
            errors["value"] = [f"a reset to {to} needs a non-negative integer value"]
    else:
        value = None
    if errors:
        raise ParameterError(errors)
    return {"group": group.strip(), "topic": topic.strip(), "to": to, "value": value}


@register("kafka_offset_reset", label="Reset Kafka consumer-group offsets", validate=validate_reset)
def run_reset(ctx):
    # One broker call moves every partition at once; a resumed run that already did it has nothing left to do.
    if ctx.done:
        return {"note": "already applied"}
    p = ctx.params
    ctx.checkpoint(force=True)
    changes = brokers.get("kafka").reset_offsets(p["group"], p["topic"], p["to"], p["value"], dry_run=False)
    ctx.set_total(len(changes))
    ctx.advance(len(changes))
    return {"changes": [{"topic": c.topic, "partition": c.partition, "old": c.old, "new": c.new} for c in changes]}
