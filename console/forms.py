from django import forms
from django.core.exceptions import ValidationError

from console.models import AuditEntry

KEY_REQUIRED = "an idempotency_key (1 to 200 characters) is required"


class TextField(forms.CharField):
    """A CharField that refuses a non-string JSON value (a list, an object, a number) instead of calling str() on
    it: an API body of `"note": {"a": 1}` is a client's mistake to be told about, not a note to store."""

    def to_python(self, value):
        if value not in self.empty_values and not isinstance(value, str):
            raise ValidationError("must be a string")
        return super().to_python(value)


class ApiReasonForm(forms.Form):
    """Every API action carries a non-empty reason and an idempotency key (a JSON body's, so a value of another type
    is named as such rather than taken for a missing one)."""

    reason = TextField(error_messages={"required": "a reason is required"})
    idempotency_key = TextField(max_length=200, error_messages={"required": KEY_REQUIRED, "max_length": KEY_REQUIRED})


class ReasonForm(forms.Form):
    """Every operator action carries a reason and the idempotency key the page was rendered with."""

    reason = forms.CharField(max_length=2000, required=True, widget=forms.TextInput(attrs={"size": 40}))
    idempotency_key = forms.CharField(max_length=200, widget=forms.HiddenInput)


class StartOperationForm(ReasonForm):
    kind = forms.CharField(max_length=64, widget=forms.HiddenInput)
    items = forms.IntegerField(min_value=1, max_value=10_000, initial=20, required=False)
    delay_ms = forms.IntegerField(min_value=0, max_value=5_000, initial=100, required=False)


class ControlForm(ReasonForm):
    action = forms.ChoiceField(choices=[(a, a) for a in ("pause", "resume", "cancel")])


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100)


class AuditFilterForm(forms.Form):
    actor = forms.CharField(required=False)
    action = forms.CharField(required=False)
    target_type = forms.CharField(required=False)
    target_id = forms.CharField(required=False)
    since = forms.DateTimeField(required=False)
    until = forms.DateTimeField(required=False)
    before = forms.IntegerField(required=False, widget=forms.HiddenInput)  # keyset cursor: entries with id < before

    def filter(self, qs):
        data = self.cleaned_data
        if data.get("actor"):
            qs = qs.filter(actor__username=data["actor"])
        if data.get("action"):
            qs = qs.filter(action__startswith=data["action"])
        if data.get("target_type"):
            qs = qs.filter(target_type=data["target_type"])
        if data.get("target_id"):
            qs = qs.filter(target_id=data["target_id"])
        if data.get("since"):
            qs = qs.filter(created_at__gte=data["since"])
        if data.get("until"):
            qs = qs.filter(created_at__lt=data["until"])
        return qs


def audit_queryset():
    return AuditEntry.objects.select_related("actor").order_by("-id")


class TimelineForm(forms.Form):
    """The dashboard's time range (page and GET /api/v1/dashboard/timeline)."""

    range = forms.ChoiceField(
        required=False, choices=[("hour", "last hour"), ("day", "last day"), ("week", "last week")]
    )

    def clean_range(self):
        return self.cleaned_data["range"] or "hour"
