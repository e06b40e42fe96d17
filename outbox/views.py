"""The Outbox page (backlog, chart, rows) and its operator forms."""

import uuid

from django import forms
from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from console.access import OPERATOR, VIEWER
from console.actions import Conflict
from console.auth import ApiError, require_role
from console.forms import ReasonForm
from outbox import stats
from outbox.actions import do_retry_events, do_set_destination_paused, do_skip_event
from outbox.api import events_page
from outbox.models import OutboxEvent, split_destination


class RetryForm(ReasonForm):
    ids = forms.CharField(max_length=200_000, widget=forms.HiddenInput)

    def clean_ids(self):
        try:
            ids = [int(i) for i in self.cleaned_data["ids"].split(",") if i.strip()]
        except ValueError:
            raise forms.ValidationError("row ids must be numbers") from None
        if not ids:
            raise forms.ValidationError("no rows chosen")
        return ids


class DestinationForm(ReasonForm):
    destination = forms.CharField(max_length=300, widget=forms.HiddenInput)

    def clean_destination(self):
        try:
            split_destination(self.cleaned_data["destination"])
        except ValueError as e:
            raise forms.ValidationError(str(e)) from e
        return self.cleaned_data["destination"]


def _errors(form) -> str:
    return "; ".join(f"{name}: {' '.join(errs)}" for name, errs in form.errors.items())


def _page_context(request) -> dict:
    params = request.GET.copy()
    params.setdefault("status", "failed")
    try:
        rows, next_before = events_page(params)
    except ApiError:
        rows, next_before = [], None
    return {
        "backlog": stats.backlog(),
        "latency": stats.latency(),
        "rows": rows,
        "next_before": next_before,
        "status": params.get("status"),
        "statuses": OutboxEvent.Status.values,
        "destination": params.get("destination", ""),
        "before": params.get("before", ""),
        "key": str(uuid.uuid4()),
        "nav": "outbox",
    }


@require_GET
@require_role(VIEWER)
def outbox(request):
    template = "outbox/outbox.html" + ("#rows" if request.htmx else "")
    return render(request, template, _page_context(request))


@require_POST
@require_role(OPERATOR)
def retry(request):
    form = RetryForm(request.POST)
    if not form.is_valid():
        messages.error(request, _errors(form))
        return redirect("outbox")
    try:
        result = do_retry_events(
            request.user, form.cleaned_data["ids"], form.cleaned_data["reason"], form.cleaned_data["idempotency_key"]
        )
        messages.success(request, f"{len(result['retried'])} row(s) will be relayed again.")
    except Conflict as e:
        messages.error(request, str(e))
    return redirect("outbox")


@require_POST
@require_role(OPERATOR)
def skip(request, event_pk: int):
    form = ReasonForm(request.POST)
    if not form.is_valid():
        messages.error(request, _errors(form))
        return redirect("outbox")
    try:
        do_skip_event(request.user, event_pk, form.cleaned_data["reason"], form.cleaned_data["idempotency_key"])
        messages.success(request, f"Row {event_pk} skipped; later rows of its key flow again.")
    except OutboxEvent.DoesNotExist:
        messages.error(request, f"There is no outbox row {event_pk}.")
    except Conflict as e:
        messages.error(request, str(e))
    return redirect("outbox")


@require_POST
@require_role(OPERATOR)
def destination_control(request, action: str):
    form = DestinationForm(request.POST)
    if action not in ("pause", "resume") or not form.is_valid():
        messages.error(request, _errors(form) or f"unknown action {action}")
        return redirect("outbox")
    data = form.cleaned_data
    do_set_destination_paused(
        request.user, data["destination"], action == "pause", data["reason"], data["idempotency_key"]
    )
    messages.success(request, f"{data['destination']}: relaying {'paused' if action == 'pause' else 'resumed'}.")
    return redirect("outbox")
