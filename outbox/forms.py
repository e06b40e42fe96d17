"""The outbox's one input layer: the page, the API and the commands validate what they are sent here."""

from django import forms

from console.forms import ReasonForm
from outbox.actions import RETRY_LIMIT
from outbox.models import split_destination
from outbox.queries import STATUS_FILTERS


class EventFilterForm(forms.Form):
    """The rows list's filter (page and GET /api/v1/outbox/events); `before` is the keyset cursor."""

    status = forms.CharField(required=False)
    destination = forms.CharField(required=False)
    key = forms.CharField(required=False)
    event_type = forms.CharField(required=False)
    before = forms.CharField(required=False)

    def clean_status(self):
        # Not a ChoiceField: its message does not name the choices, and `blocked` is one a client has to learn.
        status = self.cleaned_data["status"]
        if status and status not in STATUS_FILTERS:
            raise forms.ValidationError(f"must be one of {', '.join(STATUS_FILTERS)}")
        return status

    def clean_before(self):
        before = self.cleaned_data["before"]
        if before and not before.isdigit():
            raise forms.ValidationError("must be a row id")
        return int(before) if before else None


class RowIdsField(forms.Field):
    """Row ids: a JSON list of integers (API) or the page's comma-separated hidden field."""

    widget = forms.HiddenInput

    def to_python(self, value):
        if isinstance(value, str):
            try:
                return [int(i) for i in value.split(",") if i.strip()]
            except ValueError:
                raise forms.ValidationError("row ids must be numbers") from None
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(i, int) for i in value):
            raise forms.ValidationError(f"a list of 1 to {RETRY_LIMIT} row ids is required")
        return value

    def validate(self, value):
        if not value and self.required:
            raise forms.ValidationError("no rows chosen")
        if len(value) > RETRY_LIMIT:
            raise forms.ValidationError(f"a list of 1 to {RETRY_LIMIT} row ids is required")


class DestinationField(forms.CharField):
    """A destination URI; only its form is checked (whether the connection exists is the relay's)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 300)
        kwargs.setdefault("widget", forms.HiddenInput)
        super().__init__(**kwargs)

    def to_python(self, value):
        if value is not None and not isinstance(value, str):
            raise forms.ValidationError("must be a destination URI")
        return super().to_python(value)

    def validate(self, value):
        try:
            split_destination(value or "")
        except ValueError as e:
            raise forms.ValidationError(str(e)) from e


class RowIdsForm(forms.Form):
    ids = RowIdsField()


class DestinationTargetForm(forms.Form):
    destination = DestinationField()


class RetryForm(ReasonForm, RowIdsForm):
    pass


class DestinationForm(ReasonForm, DestinationTargetForm):
    pass
