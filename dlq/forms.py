"""The dead-letter queue's input layer: the page's replay and status forms, and the replay parameters the API and the
`dlq replay` command share. Invalid input is a django ValidationError naming each field (the API answers a 400 with
them, the command prints them, the page shows them)."""

from django import forms
from django.core.exceptions import ValidationError

from console import brokers as connections
from console.brokers import split_destination
from console.forms import ReasonForm
from console.inputs import loads
from console.operations import ParameterError
from dlq import actions, filters
from dlq.models import PURGEABLE, DeadLetter
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


def replay_targets(data):
    """The dead letters a replay form names: the checked ids, else its filter or group (status new). A bad filter is
    a ValidationError naming its fields."""
    ids = checked_ids(data)
    if ids:
        return DeadLetter.objects.filter(pk__in=ids)
    try:
        f = filters.clean(data)
    except filters.FilterError as e:
        raise ValidationError(e.fields) from e
    return filters.apply(DeadLetter.objects.filter(status="new"), f)


class ReplayPreviewForm(forms.Form):
    """The inbox's Replay…: the dead letters it names (cleaned_data["targets"]) and the rate and reason carried into
    the confirm form. The rate is checked here, so a mistyped one is named at the preview rather than at the confirm."""

    rate = forms.FloatField(required=False)
    reason = forms.CharField(required=False)  # checked by the confirm form

    def clean(self):
        data = super().clean()
        try:
            data["targets"] = replay_targets(self.data)
        except ValidationError as e:
            for name, messages in e.message_dict.items():
                self.add_error(None, f"{name}: {' '.join(messages)}")
        return data

    def message(self) -> str:
        errors = list(self.non_field_errors())
        errors += [f"{name}: {' '.join(errs)}" for name, errs in self.errors.items() if name != "__all__"]
        return "; ".join(errors)


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


class StatusPreviewForm(forms.Form):
    """The inbox's "Archive group…" / "Discard group…": a group and a status a group may be given (not restore)."""

    status = forms.ChoiceField(choices=[(s, STATUS_VERBS[s]) for s in PURGEABLE])
    group = forms.CharField()
    reason = forms.CharField(required=False)  # checked by the confirm form


def clean_edit(dl: DeadLetter, body, headers, schema_id) -> None:
    """An edited copy's body, headers and schema id, as the API and the page both check them: the body text (valid
    JSON when the dead letter's is), headers an object of text values, the schema id a positive integer or None."""
    errors = {}
    if not isinstance(body, str):
        errors["body"] = ["must be the new body as text"]
    elif dl.is_json():
        try:
            loads(body)
        except ValueError as e:  # too-deep nesting included (console.inputs.loads)
            errors["body"] = [f"is not valid JSON: {e}"]
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        errors["headers"] = ["must be an object of text values"]
    # A decoded body: encode with this later version of its schema.
    if schema_id is not None and (not isinstance(schema_id, int) or isinstance(schema_id, bool) or schema_id < 1):
        errors["schema_id"] = ["must be a schema id (a positive integer)"]
    if errors:
        raise ValidationError(errors)


class EditReplayForm(ReasonForm):
    """The detail page's Edit and replay: the headers typed as a JSON object (a number typed as a value is sent as
    its text), then the same checks as the API (clean_edit)."""

    body = forms.CharField(required=False, strip=False)
    headers = forms.CharField(required=False)
    schema_id = forms.CharField(required=False)

    def __init__(self, dead_letter: DeadLetter, data=None):
        super().__init__(data)
        self.dead_letter = dead_letter

    def clean_headers(self):
        try:
            headers = loads(self.cleaned_data["headers"] or "{}")
        except ValueError as e:
            raise forms.ValidationError(f"is not valid JSON: {e}") from e
        if not isinstance(headers, dict):
            raise forms.ValidationError("must be a JSON object")
        return {k: str(v) for k, v in headers.items()}

    def clean_schema_id(self):
        value = self.cleaned_data["schema_id"]
        return int(value) if value.isdigit() else None  # the page's select sends "" for "the schema it came with"

    def clean(self):
        data = super().clean()
        if not self.errors:
            try:
                clean_edit(self.dead_letter, data["body"], data["headers"], data["schema_id"])
            except ValidationError as e:
                for name, messages in e.message_dict.items():
                    self.add_error(name, messages)
        return data

    def message(self) -> str:
        if "reason" in self.errors or "idempotency_key" in self.errors:
            return "a reason is required"
        return "; ".join(f"{name}: {' '.join(errs)}" for name, errs in self.errors.items())


class SourceForm(forms.Form):
    """The Sources page's Save: a configured connection (as `kind` or `kind:name`), the dead-letter destination on it,
    the origin a replay sends to by default, and whether it is read."""

    connection = forms.CharField(max_length=100)
    destination = forms.CharField(max_length=500)  # DeadLetterSource's columns
    origin = forms.CharField(max_length=500, required=False)
    enabled = forms.BooleanField(required=False)
    reason = forms.CharField(max_length=2000, required=False)

    def clean_connection(self):
        try:
            conn = connections.by_key(self.cleaned_data["connection"])
        except (connections.NotConfigured, ValueError):
            conn = None
        if conn is None:
            raise forms.ValidationError("choose a configured connection")
        return conn
