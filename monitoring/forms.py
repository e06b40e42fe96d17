"""Monitoring's one input layer: the Alerts page and the API validate silences, acknowledgements and alert rules
here. Invalid input is a django ValidationError naming each field: the API answers it as a 400 with field errors, the
page shows it beside the fields."""

from datetime import UTC, datetime, timedelta

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from brokers.base import Capability
from console.brokers import kind_supports
from console.forms import KEY_REQUIRED, ReasonForm, TextField
from monitoring.models import BROKERS, AlertRule


class SilenceForm(ReasonForm):
    until = forms.CharField(max_length=64)  # then clean_until, shared with the API


MAX_NOTE = 2000


class AcknowledgeForm(forms.Form):
    """Someone is on it: an optional note and the idempotency key, from the Alerts page and the API alike."""

    note = TextField(
        max_length=MAX_NOTE,
        required=False,
        error_messages={"max_length": f"must be a string of at most {MAX_NOTE} characters"},
    )
    idempotency_key = TextField(max_length=200, error_messages={"required": KEY_REQUIRED, "max_length": KEY_REQUIRED})


MAX_SILENCE = timedelta(days=30)


def clean_until(value) -> datetime:
    """The end of a silence: an ISO 8601 time (UTC when it names no offset), in the future, at most 30 days ahead
    so that a forgotten silence cannot hide a rule for good."""
    try:
        when = parse_datetime(value.strip()) if isinstance(value, str) else None
    except ValueError:  # well formed but impossible, e.g. month 13
        when = None
    if when is None:
        raise ValidationError({"until": ["give an ISO 8601 time, e.g. 2026-11-26T18:00:00Z"]})
    if timezone.is_naive(when):
        when = when.replace(tzinfo=UTC)
    now = timezone.now()
    if when <= now:
        raise ValidationError({"until": ["must be in the future"]})
    if when > now + MAX_SILENCE:
        raise ValidationError({"until": [f"must be at most {MAX_SILENCE.days} days ahead"]})
    return when


SCOPE_FIELDS = {"broker": 20, "connection": 63, "target_name": 400, "topic": 250, "saga_type": 100, "destination": 300}
# Which scope fields each kind reads; any other one set on the rule is refused rather than silently ignored.
SCOPES = {
    AlertRule.Kind.CONSUMER_STATUS: ("broker", "connection", "target_name", "topic"),
    AlertRule.Kind.CONSUMER_LAG: ("broker", "connection", "target_name", "topic"),
    AlertRule.Kind.SAGA_COMPENSATION_FAILED: ("saga_type",),
    AlertRule.Kind.OUTBOX_FAILED: ("destination",),
}
DEFAULTS = {"threshold": 0, "seconds": 0, **{name: "" for name in SCOPE_FIELDS}}


def clean_rule(body: dict, existing: AlertRule | None = None) -> dict:
    """The rule's values from a body; with `existing`, only the fields given (the rest are kept), checked together
    with the kept ones."""
    partial = existing is not None
    errors: dict[str, list[str]] = {}
    values = {}
    if not partial or "name" in body:
        if not isinstance(body.get("name"), str) or not body["name"].strip():
            errors["name"] = ["a name is required"]
        else:
            values["name"] = body["name"].strip()[:120]
    if not partial or "kind" in body:
        if body.get("kind") not in AlertRule.Kind.values:
            errors["kind"] = [f"must be one of: {', '.join(AlertRule.Kind.values)}"]
        else:
            values["kind"] = body["kind"]
    for name, low in (("threshold", 0), ("minutes", 0), ("seconds", 0)):
        if name in body:
            if not isinstance(body[name], int) or body[name] < low:
                errors[name] = [f"must be an integer ≥ {low}"]
            else:
                values[name] = body[name]
    for name in ("webhook_url", "email"):
        if name in body:
            if not isinstance(body[name], str):
                errors[name] = ["must be a string"]
            elif name == "webhook_url" and body[name] and not body[name].startswith(("http://", "https://")):
                errors[name] = ["must be an http(s) URL"]
            else:
                values[name] = body[name].strip()
    for name, size in SCOPE_FIELDS.items():
        if name in body:
            if not isinstance(body[name], str) or len(body[name].strip()) > size:
                errors[name] = [f"must be a string of at most {size} characters"]
            elif name == "broker" and body[name].strip() and body[name].strip() not in BROKERS:
                errors[name] = [f"must be one of: {', '.join(BROKERS)}"]
            else:
                values[name] = body[name].strip()
    if "enabled" in body:
        values["enabled"] = bool(body["enabled"])
    if not errors:
        _check_together({**DEFAULTS, **(existing.as_json() if existing else {}), **values}, errors)
    if errors:
        raise ValidationError(errors)
    return values


def _check_together(rule: dict, errors: dict[str, list[str]]) -> None:
    kind = rule["kind"]
    for name in SCOPE_FIELDS:
        if rule[name] and name not in SCOPES.get(kind, ()):
            errors[name] = [f"the {kind} rule has no {name} scope; leave it empty"]
    if kind in (AlertRule.Kind.CONSUMER_STATUS, AlertRule.Kind.CONSUMER_LAG):
        if rule["target_name"] and not rule["broker"]:
            errors["broker"] = ["name the broker of the group or queue"]
        if rule["connection"] and not rule["broker"]:
            errors["connection"] = ["a connection scopes a broker: set the broker's kind too"]
        topics = kind_supports(rule["broker"] or "", Capability.CONSUMER_GROUPS)
        if rule["topic"] and (not topics or not rule["target_name"]):
            errors["topic"] = [
                "a topic scopes a Kafka group (a broker with consumer groups): set broker kafka and the group's name"
            ]
    if kind == AlertRule.Kind.CONSUMER_LAG and not rule["threshold"] and not rule["seconds"]:
        errors["threshold"] = ["give X (messages behind), seconds behind, or both"]
    elif kind != AlertRule.Kind.CONSUMER_LAG and rule["seconds"]:
        errors["seconds"] = ["only the consumer_lag rule has a seconds threshold; leave it 0"]


class AlertRulePageForm(forms.Form):
    """The Alerts page's new-rule and edit forms: every field as the API's body would carry it (the numbers as
    integers, blank being 0; `enabled` from its checkbox pair, on when the form does not say), then clean_rule, so the
    page and the API refuse the same rules with the same field errors. cleaned_data["values"] is the rule's values."""

    NUMBER = {"invalid": "must be an integer ≥ 0"}  # as clean_rule says it

    name = forms.CharField(required=False)
    kind = forms.CharField(required=False)
    webhook_url = forms.CharField(required=False)
    email = forms.CharField(required=False)
    broker = forms.CharField(required=False)
    connection = forms.CharField(required=False)
    target_name = forms.CharField(required=False)
    topic = forms.CharField(required=False)
    saga_type = forms.CharField(required=False)
    destination = forms.CharField(required=False)
    threshold = forms.IntegerField(required=False, error_messages=NUMBER)
    minutes = forms.IntegerField(required=False, error_messages=NUMBER)
    seconds = forms.IntegerField(required=False, error_messages=NUMBER)
    reason = forms.CharField(required=False)
    idempotency_key = forms.CharField(required=False)

    def clean(self):
        data = super().clean()
        body = {name: data[name] for name in ("name", "kind", "webhook_url", "email", *SCOPE_FIELDS) if name in data}
        for name in ("threshold", "minutes", "seconds"):
            # One that did not parse is still a refused value, so the rule's other fields are checked as before.
            body[name] = (data[name] or 0) if name in data else -1
        body["enabled"] = self.data.get("enabled", "on") == "on"
        try:
            data["values"] = clean_rule(body)
        except ValidationError as e:
            for name, messages in e.message_dict.items():
                if name not in self.errors:  # a number that did not parse is said once
                    self.add_error(name if name in self.fields else None, messages)
        return data
