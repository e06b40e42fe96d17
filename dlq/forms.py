"""The dead-letter queue's input layer: the replay parameters the API and the `dlq replay` command share. Invalid
input is a django ValidationError naming each field (the API answers a 400 with them, the command prints them)."""

from django.core.exceptions import ValidationError

from console.brokers import split_destination
from console.operations import ParameterError
from dlq import actions, filters
from dlq.models import DeadLetter
from dlq.operations import validate

REPLAY_OPTIONS = (
    "rate",
    "canary",
    "canary_threshold",
    "canary_mode",
    "canary_wait_seconds",
    "dry_run",
    "override_loop_guard",
    "batch",
    "republish_to_topic",  # an SNS subscription's dead letter to its topic (every subscriber) instead of its endpoint
)


def replay_params(body: dict) -> dict:
    """ids, or a filter (or a group), frozen into ids now, plus the validated options of the operation."""
    if "ids" in body:
        ids = body["ids"]
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise ValidationError({"ids": ["must be a list of dead-letter ids"]})
        frozen = actions.preview(DeadLetter.objects.filter(pk__in=ids))
    else:
        f = body.get("filter") or {}
        if not isinstance(f, dict):
            raise ValidationError({"filter": ["must be an object"]})
        if body.get("group"):
            f = {**f, "group": body["group"]}
        try:
            f = filters.clean(f)
        except filters.FilterError as e:
            raise ValidationError(e.fields) from e
        if not f:
            raise ValidationError({"ids": ["give ids, a group or a filter"]})
        frozen = actions.preview(filters.apply(DeadLetter.objects.filter(status="new"), f))
    if not frozen["ids"]:
        raise ValidationError({"ids": ["no dead letters match"]})
    params = {"ids": frozen["ids"], **{k: body[k] for k in REPLAY_OPTIONS if k in body}}
    destination = body.get("destination")
    if destination:
        if not isinstance(destination, str) or ":" not in destination:
            raise ValidationError(
                {"destination": ["must be kind:connection/destination or kind:destination, e.g. sqs:billing/orders"]}
            )
        params["broker"], params["destination"] = split_destination(destination)
    try:
        return {**validate(params), "_preview": frozen}
    except ParameterError as e:
        raise ValidationError(e.fields) from e
