"""The one input layer for a saga action's parameters: the page's form, the JSON API and the `saga` command all hand
their input to `SagaActionForm`, so a field is checked in one place (an evidence link that is not http(s) was once
refused by the API and stored by the page)."""

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

from console.forms import ReasonForm, TextField

NOTE_MAX = 5000
ACCEPTED_RISK = "accepted risk"
# Only these become a link on the saga's timeline: `javascript:` or `data:` in an href runs in the reader's browser.
LINK_SCHEMES = ("http", "https")


def is_web_link(value: str) -> bool:
    """Is `value` an http(s) URL that may be rendered into an href? (Rows stored before the form checked it are
    shown as text.)"""
    try:
        URLValidator(schemes=LINK_SCHEMES)(value)
    except ValidationError:
        return False
    return True


class SagaActionForm(forms.Form):
    """What one saga action takes besides the reason and idempotency key: the step to compensate from, the note
    (resolve: how it was fixed; skip: the risk accepted) and the evidence link of a resolve."""

    step = TextField(required=False, max_length=200)
    note = TextField(required=False, max_length=NOTE_MAX)
    evidence_url = TextField(
        required=False,
        max_length=500,  # SagaStepEvent.evidence_url's column
        validators=[URLValidator(schemes=LINK_SCHEMES, message="must be an http(s) link")],
    )

    def __init__(self, action: str, data=None):
        super().__init__(data)
        self.action = action

    def clean(self):
        data = super().clean()
        if self.action == "resolve" and not data.get("note") and "note" not in self.errors:
            self.add_error("note", "a note saying how it was resolved is required")
        return data

    def params(self) -> dict:
        """The parameters the action takes (call after is_valid()); identity never comes from here."""
        data = self.cleaned_data
        if self.action == "compensate":
            return {"step": data["step"]} if data.get("step") else {}
        if self.action == "resolve":
            return {"note": data["note"], "evidence_url": data.get("evidence_url", "")}
        if self.action == "skip":
            return {"note": data.get("note") or ACCEPTED_RISK}
        return {}

    def field_errors(self) -> dict[str, list[str]]:
        return {name: list(errors) for name, errors in self.errors.items()}

    def message(self) -> str:
        """The errors as one line, for the page and the command."""
        return "; ".join(f"{name.replace('_', ' ')}: {' '.join(errs)}" for name, errs in self.errors.items())


def reason_message(form: ReasonForm) -> str:
    """The page's line for a refused reason and key: the common case (none given) said plainly."""
    if "reason" in form.errors and not str(form.data.get("reason", "")).strip():
        return "A reason is required."
    return "; ".join(f"{name.replace('_', ' ')}: {' '.join(errs)}" for name, errs in form.errors.items())


class BulkStartForm(ReasonForm):
    """The bulk confirm: the action (one of sagas.actions.ACTIONS, checked by the view: this module sits below the
    models) and the signed selection the preview froze."""

    action = forms.CharField(max_length=64)
    selection = forms.CharField(required=False, widget=forms.HiddenInput)


class BulkPreviewForm(forms.Form):
    """The list's bulk preview: the action, and either the ticked sagas (`target=selected`, repeated `saga_ids`) or
    the list's filter (read by the view through sagas.queries.SagaFilterForm). The actions and the cap are given by
    the view: this module sits below the models, which sagas.actions imports."""

    action = forms.ChoiceField(error_messages={"required": "Choose an action.", "invalid_choice": "Choose an action."})
    target = forms.CharField(required=False)
    saga_ids = forms.MultipleChoiceField(required=False)  # any text: the view keeps the ids that name a saga

    def __init__(self, actions: tuple[str, ...], cap: int, data=None):
        super().__init__(data)
        self.fields["action"].choices = [(a, a) for a in actions]
        self.fields["saga_ids"].valid_value = lambda value: True
        self.cap = cap

    @property
    def ticked(self) -> bool:
        """Were sagas ticked (else: every saga matching the filter)? Call after is_valid()."""
        return self.cleaned_data.get("target") == "selected"

    def clean(self):
        data = super().clean()
        if data.get("target") == "selected" and "action" not in self.errors:
            ids = data.get("saga_ids") or []
            if len(ids) > self.cap:
                self.add_error("saga_ids", f"More than {self.cap} sagas ticked: use a filter.")
            elif not ids:
                self.add_error("saga_ids", "Tick at least one saga (that still exists).")
        return data

    def message(self) -> str:
        """The first error, as the preview's one line."""
        return next(iter(self.errors.values()))[0]
