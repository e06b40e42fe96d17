"""The Outbox page (backlog, chart, rows), its operator forms, and one event's page."""

import uuid

from django.contrib import messages
from django.http import QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRefresh

from console import bodies
from console.access import OPERATOR, VIEWER, can_read_contents
from console.actions import Conflict
from console.auth import require_role
from console.forms import ReasonForm
from console.views import HtmxHttpRequest, back_to_referer
from formats.decode import pretty
from outbox import stats
from outbox.actions import do_retry_events, do_retry_failed_destination, do_set_destination_paused, do_skip_event
from outbox.forms import DestinationForm, EventFilterForm, RetryForm
from outbox.models import OutboxEvent, OutboxPayload
from outbox.payloads import outbox_payload
from outbox.queries import STATUS_FILTERS, events_page, headers_for

FILTERS = ("status", "destination", "key", "event_type")


def _errors(form) -> str:
    return "; ".join(f"{name}: {' '.join(errs)}" for name, errs in form.errors.items())


def _page_context(request) -> dict:
    params = request.GET.copy()
    params.setdefault("status", "failed")
    form = EventFilterForm(params)
    # A filter the page cannot apply shows no rows rather than all of them.
    rows, next_before = events_page(form.cleaned_data) if form.is_valid() else ([], None)
    # The filter as a query string: the live refresh and the pager carry it, so neither widens what is shown.
    query = QueryDict(mutable=True)
    for name in FILTERS:
        if params.get(name):
            query[name] = params[name]
    return {
        "backlog": stats.backlog(),
        "latency": stats.latency(),
        "rows": rows,
        "next_before": next_before,
        "status": params.get("status"),
        "statuses": STATUS_FILTERS,
        "destination": params.get("destination", ""),
        "event_key": params.get("key", ""),
        "event_type": params.get("event_type", ""),
        "filter_query": query.urlencode(),
        "before": params.get("before", ""),
        "key": str(uuid.uuid4()),
        "nav": "outbox",
    }


@require_GET
@require_role(VIEWER)
def outbox(request: HtmxHttpRequest):
    template = "outbox/outbox.html" + ("#rows" if request.htmx else "")
    return render(request, template, _page_context(request))


@require_POST
@require_role(OPERATOR)
def retry(request):
    form = RetryForm(request.POST)
    if not form.is_valid():
        messages.error(request, _errors(form))
        return redirect(back_to_referer(request, "outbox"))
    try:
        result = do_retry_events(
            request.user, form.cleaned_data["ids"], form.cleaned_data["reason"], form.cleaned_data["idempotency_key"]
        )
        messages.success(request, f"{len(result['retried'])} row(s) will be relayed again.")
    except Conflict as e:
        messages.error(request, str(e))
    return redirect(back_to_referer(request, "outbox"))


@require_POST
@require_role(OPERATOR)
def skip(request, event_pk: int):
    form = ReasonForm(request.POST)
    if not form.is_valid():
        messages.error(request, _errors(form))
        return redirect(back_to_referer(request, "outbox"))
    try:
        do_skip_event(request.user, event_pk, form.cleaned_data["reason"], form.cleaned_data["idempotency_key"])
        messages.success(request, f"Row {event_pk} skipped; later rows of its key flow again.")
    except OutboxEvent.DoesNotExist:
        messages.error(request, f"There is no outbox row {event_pk}.")
    except Conflict as e:
        messages.error(request, str(e))
    return redirect(back_to_referer(request, "outbox"))


def _back_to_page(request: HtmxHttpRequest):
    # The backlog table's forms post through htmx (the live re-render has no request, so no CSRF token of its own:
    # htmx sends the page's). A full reload then shows the message with the page's filters kept.
    return HttpResponseClientRefresh() if request.htmx else redirect(back_to_referer(request, "outbox"))


@require_POST
@require_role(OPERATOR)
def destination_control(request: HtmxHttpRequest, action: str):
    form = DestinationForm(request.POST)
    if action not in ("pause", "resume") or not form.is_valid():
        messages.error(request, _errors(form) or f"unknown action {action}")
        return _back_to_page(request)
    data = form.cleaned_data
    try:
        do_set_destination_paused(
            request.user, data["destination"], action == "pause", data["reason"], data["idempotency_key"]
        )
    except Conflict as e:
        messages.error(request, str(e))
        return _back_to_page(request)
    messages.success(request, f"{data['destination']}: relaying {'paused' if action == 'pause' else 'resumed'}.")
    return _back_to_page(request)


@require_POST
@require_role(OPERATOR)
def retry_destination(request: HtmxHttpRequest):
    form = DestinationForm(request.POST)
    if not form.is_valid():
        messages.error(request, _errors(form))
        return _back_to_page(request)
    data = form.cleaned_data
    try:
        result = do_retry_failed_destination(request.user, data["destination"], data["reason"], data["idempotency_key"])
        messages.success(
            request, f"{data['destination']}: {len(result['retried'])} failed row(s) will be relayed again."
        )
    except Conflict as e:
        messages.error(request, str(e))
    return _back_to_page(request)


@require_GET
@require_role(VIEWER)
def event(request, event_pk: int):
    row = get_object_or_404(OutboxEvent, pk=event_pk)
    readable = can_read_contents(request.user)
    # A user who may not read the payload still sees its size: no bytes of it are read for them.
    claim_check = row.claim_check_id and OutboxPayload.head(row.claim_check_id, bodies.SHOWN if readable else 0)
    if claim_check:
        head, size, sha256 = claim_check
    else:
        data = bytes(row.payload or b"")
        head, size, sha256 = data[: bodies.SHOWN], len(data), ""
    ctx = {
        "e": row,
        "headers": sorted(headers_for(request.user, row).items()),
        "payload": bodies.views(head, size) if readable else {"size": size},
        "claim_check_sha256": sha256,
        "nav": "outbox",
    }
    if readable:  # a bytes payload in Avro, Protobuf, CloudEvents or compressed, decoded (formats/, ADR 0051)
        ctx["decoded"] = outbox_payload(row, head, size > len(head))
        ctx["decoded_text"] = (
            pretty(ctx["decoded"]) if ctx["decoded"] and ctx["decoded"].get("value") is not None else None
        )
    return render(request, "outbox/event.html", ctx)
