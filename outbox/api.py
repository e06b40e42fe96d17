"""JSON API: /api/v1/outbox/..."""

import uuid

from django.http import HttpResponse, JsonResponse

from console.access import OPERATOR, VIEWER
from console.actions import Conflict
from console.api import require_reason_and_key
from console.auth import ApiError, api, json_body
from outbox import stats
from outbox.actions import do_retry_events, do_set_destination_paused, do_skip_event
from outbox.models import OutboxEvent, OutboxPayload, split_destination

PAGE_SIZE = 100


def _object_body(request) -> dict:
    body = json_body(request)
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


def events_page(params) -> tuple[list[OutboxEvent], int | None]:
    """Newest first, keyset-paged by id (`before`); shared by the API and the page."""
    rows = OutboxEvent.objects.order_by("-id").defer("payload", "headers")
    status = params.get("status")
    if status:
        if status not in OutboxEvent.Status.values:
            raise ApiError(400, "invalid filter", {"status": [f"must be one of {', '.join(OutboxEvent.Status)}"]})
        rows = rows.filter(status=status)
    for name in ("destination", "key", "event_type"):
        if params.get(name):
            rows = rows.filter(**{name: params[name]})
    before = params.get("before")
    if before:
        if not str(before).isdigit():
            raise ApiError(400, "invalid filter", {"before": ["must be a row id"]})
        rows = rows.filter(id__lt=int(before))
    page = list(rows[:PAGE_SIZE])
    return page, page[-1].pk if len(page) == PAGE_SIZE else None


@api(role=VIEWER)
def stats_view(request):
    return JsonResponse({**stats.backlog().as_json(), "latency": stats.latency()})


@api(role=VIEWER)
def series_view(request):
    return JsonResponse(stats.series())


@api(role=VIEWER)
def events(request):
    page, next_before = events_page(request.GET)
    return JsonResponse({"events": [e.as_json() for e in page], "next_before": next_before})


@api(role=VIEWER)
def payload(request, payload_id):
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
    body = _object_body(request)
    reason, key = require_reason_and_key(body)
    ids = body.get("ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, int) for i in ids) or len(ids) > 10_000:
        raise ApiError(400, "invalid request", {"ids": ["a list of 1 to 10000 row ids is required"]})
    try:
        result = do_retry_events(request.user, ids, reason, key, via=request.auth_via or "api")
    except Conflict as e:
        raise ApiError(409, str(e)) from e
    return JsonResponse(result)


@api(methods=("POST",), role=OPERATOR)
def skip(request, event_pk):
    body = _object_body(request)
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
    if action not in ("pause", "resume"):
        raise ApiError(404, f"unknown action {action!r}; use pause or resume")
    body = _object_body(request)
    reason, key = require_reason_and_key(body)
    destination = body.get("destination")
    try:
        split_destination(destination if isinstance(destination, str) else "")
    except ValueError as e:
        raise ApiError(400, "invalid request", {"destination": [str(e)]}) from e
    result = do_set_destination_paused(
        request.user, destination, action == "pause", reason, key, via=request.auth_via or "api"
    )
    return JsonResponse(result)
