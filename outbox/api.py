"""JSON API: /api/v1/outbox/..."""

import base64
import json
import uuid

from django.db.models.expressions import RawSQL
from django.http import HttpResponse, JsonResponse
from django.urls import reverse

from console.access import CONTENTS_NOTE, OPERATOR, VIEWER, can_read_contents
from console.actions import Conflict
from console.api import require_reason_and_key
from console.auth import ApiError, api, json_body
from outbox import stats
from outbox.actions import (
    RETRY_LIMIT,
    do_retry_events,
    do_retry_failed_destination,
    do_set_destination_paused,
    do_skip_event,
)
from outbox.models import (
    H_CORRELATION,
    H_EVENT_ID,
    H_EVENT_TYPE,
    H_SCHEMA,
    OutboxEvent,
    OutboxPayload,
    split_destination,
)

PAGE_SIZE = 100


def _object_body(request) -> dict:
    body = json_body(request)
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


# Not a stored status: the rows that hold their key back, i.e. the oldest open row of a key when it has failed or is
# backing off after a failed attempt. Skipping or retrying one of them is what frees the rows behind it.
BLOCKED = "blocked"
STATUS_FILTERS = (*OutboxEvent.Status.values, BLOCKED)
_BLOCKING_HEADS_SQL = f"""
SELECT id FROM (
    SELECT DISTINCT ON (order_key) id, status, attempts FROM {OutboxEvent._meta.db_table}
    WHERE status IN ('pending', 'failed') ORDER BY order_key, id
) AS head WHERE status = 'failed' OR attempts > 0
"""


def events_page(params) -> tuple[list[OutboxEvent], int | None]:
    """Newest first, keyset-paged by id (`before`); shared by the API and the page."""
    rows = OutboxEvent.objects.order_by("-id").defer("payload", "headers")
    status = params.get("status")
    if status:
        if status not in STATUS_FILTERS:
            raise ApiError(400, "invalid filter", {"status": [f"must be one of {', '.join(STATUS_FILTERS)}"]})
        if status == BLOCKED:
            rows = rows.filter(id__in=RawSQL(_BLOCKING_HEADS_SQL, []))
        else:
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


# The envelope's own headers: what the outbox says about the event. The publisher's headers may carry the same personal
# or secret data as the payload, so a user who may not read contents sees their names only (value None).
ENVELOPE_HEADERS = frozenset((H_EVENT_ID, H_EVENT_TYPE, H_SCHEMA, H_CORRELATION))


def headers_for(user, row: OutboxEvent) -> dict[str, str | None]:
    headers = row.envelope_headers()
    if can_read_contents(user):
        return headers
    return {name: value if name in ENVELOPE_HEADERS else None for name, value in headers.items()}


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
    page, next_before = events_page(request.GET)
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
    body = _object_body(request)
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
    ids = body.get("ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, int) for i in ids) or len(ids) > RETRY_LIMIT:
        raise ApiError(400, "invalid request", {"ids": [f"a list of 1 to {RETRY_LIMIT} row ids is required"]})
    return ids


def _destination(body: dict) -> str:
    destination = body.get("destination")
    try:
        split_destination(destination if isinstance(destination, str) else "")
    except ValueError as e:
        raise ApiError(400, "invalid request", {"destination": [str(e)]}) from e
    return destination


@api(methods=("POST",), role=OPERATOR)
def skip(request, event_pk):
    """POST {reason, idempotency_key}: never send this row; the later rows of its key flow again."""
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
    """POST {destination, reason, idempotency_key} to .../pause or .../resume relaying to one destination."""
    if action not in ("pause", "resume"):
        raise ApiError(404, f"unknown action {action!r}; use pause or resume")
    body = _object_body(request)
    reason, key = require_reason_and_key(body)
    result = do_set_destination_paused(
        request.user, _destination(body), action == "pause", reason, key, via=request.auth_via or "api"
    )
    return JsonResponse(result)
