"""JSON API: /api/v1/outbox/..."""

import base64
import json
import uuid

from django.http import HttpResponse, JsonResponse
from django.urls import reverse

from console.access import CONTENTS_NOTE, OPERATOR, VIEWER, can_read_contents
from console.actions import Conflict
from console.api import require_reason_and_key
from console.auth import ApiError, api, json_object
from outbox import stats
from outbox.actions import (
    do_retry_events,
    do_retry_failed_destination,
    do_set_destination_paused,
    do_skip_event,
)
from outbox.forms import DestinationTargetForm, EventFilterForm, RowIdsForm
from outbox.models import OutboxEvent, OutboxPayload
from outbox.queries import events_page, headers_for


@api(role=VIEWER)
def stats_view(request):
    """The backlog now: unpublished, oldest unpublished age, failed, blocked keys, per destination and event type."""
    return JsonResponse({**stats.backlog().as_json(), "latency": stats.latency()})


@api(role=VIEWER)
def series_view(request):
    """Rates in / out and publish latency percentiles over time, for the chart."""
    return JsonResponse(stats.series())


@api(role=VIEWER)
def events(request):
    """Outbox rows newest first, by `status` (a stored one, or `blocked`: the rows holding their key back),
    `destination`, `key` or `event_type`."""
    form = EventFilterForm(request.GET)
    if not form.is_valid():
        raise ApiError.invalid(form, "invalid filter")
    page, next_before = events_page(form.cleaned_data)
    return JsonResponse({"events": [e.as_json() for e in page], "next_before": next_before})


@api(role=VIEWER)
def event(request, event_pk):
    """One row with its headers and payload: JSON as JSON, bytes (or stored JSON that does not parse) as base64, and
    a claim check as a reference to GET /api/v1/outbox/payloads/<id>. No payload for a user who may not read it."""
    row = OutboxEvent.objects.filter(pk=event_pk).first()
    if row is None:
        raise ApiError(404, "no such outbox row")
    body = {**row.as_json(), "encoding": row.encoding, "headers": headers_for(request.user, row)}
    if not can_read_contents(request.user):
        return JsonResponse({**body, "contents_hidden": CONTENTS_NOTE})
    stored = row.claim_check_id and OutboxPayload.head(row.claim_check_id, 0)
    if stored:
        _, size, sha256 = stored
        url = reverse("api_outbox_payload", args=[row.claim_check_id])
        ref = {"claim_check": f"outbox-payload:{row.claim_check_id}", "size": size, "sha256": sha256, "url": url}
        return JsonResponse({**body, "payload_ref": ref})
    data = bytes(row.payload or b"")
    if row.encoding == OutboxEvent.Encoding.JSON:
        try:
            return JsonResponse({**body, "payload": json.loads(data) if data else None})
        except (ValueError, RecursionError):
            pass  # not what publish() writes, but shown rather than refused
    return JsonResponse({**body, "payload_base64": base64.b64encode(data).decode()})


@api(role=VIEWER)
def payload(request, payload_id):
    """A claim-checked payload's bytes, by the reference the sent message carries."""
    if not can_read_contents(request.user):
        raise ApiError(403, f"payload not available: {CONTENTS_NOTE}")
    try:
        uuid.UUID(str(payload_id))
    except ValueError:
        raise ApiError(404, "no such payload") from None
    row = OutboxPayload.objects.filter(pk=payload_id).first()
    if row is None:
        raise ApiError(404, "no such payload")
    response = HttpResponse(bytes(row.data), content_type="application/octet-stream")
    response["X-Content-SHA256"] = row.sha256
    return response


@api(methods=("POST",), role=OPERATOR)
def retry(request):
    """Retry chosen rows (`ids`) or every failed row of one `destination`: exactly one of the two."""
    body = json_object(request)
    reason, key = require_reason_and_key(body)
    if ("ids" in body) == ("destination" in body):
        raise ApiError(400, "send exactly one of ids (row ids) or destination (retry all its failed rows)")
    via = request.auth_via or "api"
    try:
        if "destination" in body:
            result = do_retry_failed_destination(request.user, _destination(body), reason, key, via=via)
        else:
            result = do_retry_events(request.user, _ids(body), reason, key, via=via)
    except Conflict as e:
        raise ApiError(409, str(e)) from e
    return JsonResponse(result)


def _ids(body: dict) -> list[int]:
    form = RowIdsForm({"ids": body.get("ids")})
    if not form.is_valid():
        raise ApiError.invalid(form)
    return form.cleaned_data["ids"]


def _destination(body: dict) -> str:
    form = DestinationTargetForm({"destination": body.get("destination")})
    if not form.is_valid():
        raise ApiError.invalid(form)
    return form.cleaned_data["destination"]


@api(methods=("POST",), role=OPERATOR)
def skip(request, event_pk):
    """POST {reason, idempotency_key}: never send this row; the later rows of its key flow again."""
    body = json_object(request)
    reason, key = require_reason_and_key(body)
    try:
        result = do_skip_event(request.user, event_pk, reason, key, via=request.auth_via or "api")
    except OutboxEvent.DoesNotExist:
        raise ApiError(404, "no such outbox row") from None
    except Conflict as e:
        raise ApiError(409, str(e)) from e
    return JsonResponse(result)


@api(methods=("POST",), role=OPERATOR)
def destination_control(request, action):
    """POST {destination, reason, idempotency_key} to .../pause or .../resume relaying to one destination."""
    if action not in ("pause", "resume"):
        raise ApiError(404, f"unknown action {action!r}; use pause or resume")
    body = json_object(request)
    reason, key = require_reason_and_key(body)
    result = do_set_destination_paused(
        request.user, _destination(body), action == "pause", reason, key, via=request.auth_via or "api"
    )
    return JsonResponse(result)
