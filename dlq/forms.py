"""The dead-letter queue's input layer: the page's replay and status forms, and the replay parameters the API and the
`dlq replay` command share. Invalid input is a django ValidationError naming each field (the API answers a 400 with
them, the command prints them, the page shows them)."""

from django import forms
from django.core.exceptions import ValidationError

from console.brokers import split_destination
from console.forms import ReasonForm
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


class IdsField(forms.Field):
    """The inbox's checked rows (repeated `ids`); anything that is not a row id is ignored, as a stale tick is."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value):
        return [int(i) for i in value or [] if str(i).isdigit()]


def checked_ids(data) -> list[int]:
    """The checked ids of a posted inbox form (a QueryDict)."""
    field = IdsField(required=False)
    return field.clean(field.widget.value_from_datadict(data, {}, "ids"))


class ReplayForm(ReasonForm):
    """The page's Replay: a selection frozen by the preview (else the checked ids or the form's filter, frozen at
    submit) and the operation's options, checked again by dlq.operations.validate."""

    selection = forms.CharField(required=False)
    rate = forms.FloatField(required=False)
    canary = forms.IntegerField(required=False)
    dry_run = forms.BooleanField(required=False)
    override_loop_guard = forms.BooleanField(required=False)
    republish_to_topic = forms.BooleanField(required=False)
    broker = forms.CharField(required=False)
    destination = forms.CharField(required=False)

    def options(self) -> dict:
        """The operation's parameters other than its ids (call after is_valid())."""
        data = self.cleaned_data
        raw = {name: data[name] for name in ("dry_run", "override_loop_guard", "republish_to_topic")}
        for name in ("rate", "canary"):
            if data[name] is not None:
                raw[name] = data[name]
        if data["destination"]:
            raw["broker"], raw["destination"] = data["broker"], data["destination"]
        return raw

    def message(self) -> str:
        if "reason" in self.errors or "idempotency_key" in self.errors:
            return "A reason is required."
        return "; ".join(f"{name}: {' '.join(errs)}" for name, errs in self.errors.items())


# The status a form asks for -> the verb its preview, audit entry and messages use.
STATUS_VERBS = {
    DeadLetter.Status.ARCHIVED: "archive",
    DeadLetter.Status.DISCARDED: "discard",
    DeadLetter.Status.NEW: "restore",
}


class StatusForm(ReasonForm):
    """Archive, discard or restore the checked rows or a selection frozen by the status preview."""

    status = forms.ChoiceField(choices=[(s, v) for s, v in STATUS_VERBS.items()])
    selection = forms.CharField(required=False)
    ids = IdsField(required=False)
