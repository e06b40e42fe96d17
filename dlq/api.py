"""JSON API: /api/v1/dead-letters (+ /<id>, /replay, /archive, /discard, /restore, /<id>/edit-replay),
/dead-letter-groups."""

from __future__ import annotations

import base64
import json

from django.core.exceptions import ValidationError
from django.http import JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404

from console.access import CONTENTS_NOTE, OPERATOR, VIEWER, can_read_contents
from console.actions import Conflict
from console.api import require_reason_and_key
from console.auth import ApiError, api, json_object
from dlq import actions, contents, filters, forms, queries, retention
from dlq.models import DeadLetter
from formats.decode import without_contents
from formats.queries import flag_mismatches
from formats.validation import SchemaMismatch


def _filters(params) -> dict:
    try:
        return filters.clean(params)
    except filters.FilterError as e:
        raise ApiError(400, "invalid filter", e.fields) from e


def _read_filters(request) -> dict:
    """The filters of a read: a body search (or hidden-header filter) by a user who may not read contents is a 403,
    not an empty answer, or which filters match would tell what the bodies hold."""
    f = _filters(request.GET)
    refused = contents.refused_filters(f, request.user)
    if refused:
        raise ApiError(403, "filter not allowed", refused)
    return f


def _full_json(dl: DeadLetter, readable: bool) -> dict:
    data = dl.as_json(full=True)
    if readable:
        data["body_base64"] = base64.b64encode(dl.body_bytes()).decode()
    else:
        del data["body_text"]  # the body's text prefix: contents, like the body
        data["decoded"] = without_contents(data["decoded"])  # which decoder and schema, not what it read
        data["headers"] = contents.masked_headers(dl)
        data["contents_hidden"] = CONTENTS_NOTE
    return data


@api(role=VIEWER)
def dead_letters(request):
    """Dead letters newest first (keyset `before`), the inbox's filters as query parameters, with an estimated total."""
    f = _read_filters(request)
    before = request.GET.get("before")
    if before and not before.isdigit():
        raise ApiError(400, "invalid filter", {"before": ["must be a dead-letter id"]})
    rows, next_before = queries.inbox(f, int(before) if before else None, queries.PAGE_SIZE)
    total, exact = filters.counted(filters.apply(DeadLetter.objects.all(), f), queries.PAGE_SIZE)
    return JsonResponse(
        {
            "dead_letters": [dl.as_json() for dl in rows],
            "next_before": next_before,
            "total": total,
            "total_is_estimate": not exact,
        }
    )


@api(role=VIEWER)
def export(request):
    """Every dead letter matching the inbox's filters as JSON lines, oldest first, each with its headers and its body
    in base64 (as GET /api/v1/dead-letters/<id> has them, contents hidden the same way): for a ticket, a notebook or
    another tool. Streamed, so a large export never sits in memory; a bad filter is a 400 before anything is sent."""
    f = _read_filters(request)
    rows = filters.apply(DeadLetter.objects.select_related("source"), f).order_by("id")
    readable = can_read_contents(request.user)

    def lines():
        for dl in rows.iterator(chunk_size=200):
            yield json.dumps(_full_json(dl, readable)) + "\n"

    response = StreamingHttpResponse(lines(), content_type="application/x-ndjson")
    response["Content-Disposition"] = 'attachment; filename="switchyard-dead-letters.jsonl"'
    return response


@api(role=VIEWER)
def dead_letter(request, dead_letter_id: int):
    """One dead letter with its headers, body (base64) and replay history; contents as the caller's role allows."""
    dl = get_object_or_404(DeadLetter.objects.select_related("source"), pk=dead_letter_id)
    data = _full_json(dl, can_read_contents(request.user))
    data["replays"] = [
        {
            "at": r.created_at.isoformat(),
            "destination": f"{r.broker}:{r.connection}/{r.destination}",
            "operation": str(r.operation_id),
        }
        for r in dl.replays.order_by("id")
    ]
    return JsonResponse(data)


@api(role=VIEWER)
def dead_letter_groups(request):
    """Dead letters grouped by failure fingerprint: counts (total and new), origins, first and last seen."""
    rows = queries.groups(_read_filters(request))
    groups = flag_mismatches([queries.group_json(r) for r in rows])  # "schema mismatch" (formats/, ADR 0051)
    return JsonResponse({"groups": groups, "warnings": retention.warnings()})


@api(methods=("POST",), role=OPERATOR)
def replay(request):
    """POST {ids | filter, rate?, destination?, canary?, dry_run?, republish_to_topic?, reason, idempotency_key}:
    replay as an operation. republish_to_topic: SNS subscriptions' dead letters to their topic (every subscriber)."""
    body = json_object(request)
    reason, key = require_reason_and_key(body)
    try:
        params = forms.replay_params(body)
    except ValidationError as e:
        raise ApiError(400, "invalid request", e.message_dict) from e
    frozen = params.pop("_preview")
    try:
        op, created = actions.do_replay_dead_letters(request.user, params, reason, key, via=request.auth_via or "api")
    except Conflict as e:
        raise ApiError(409, str(e)) from e
    data = {"operation": op.as_json(), "count": frozen["count"], "sample": frozen["sample"]}
    return JsonResponse(data, status=201 if created else 200)


@api(methods=("POST",), role=OPERATOR)
def set_status(request, status: str):
    """Archive, discard, or restore (status new): a restore changes only the archived and discarded ones."""
    body = json_object(request)
    reason, key = require_reason_and_key(body)
    ids = body.get("ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise ApiError(400, "invalid request", {"ids": ["must be a non-empty list of dead-letter ids"]})
    try:
        changed = actions.do_set_status(request.user, ids, status, reason, key, via=request.auth_via or "api")
    except Conflict as e:
        raise ApiError(409, str(e)) from e
    return JsonResponse({"changed": changed, "status": status})


@api(methods=("POST",), role=OPERATOR)
def edit_replay(request, dead_letter_id: int):
    """POST {body, headers, reason, idempotency_key}: replay an edited copy; the diff goes into the audit entry."""
    dl = get_object_or_404(DeadLetter.objects.select_related("source"), pk=dead_letter_id)
    body = json_object(request)
    reason, key = require_reason_and_key(body)
    new_body, headers = body.get("body"), body.get("headers", {})
    schema_id = body.get("schema_id")  # a decoded body: encode with this later version of its schema
    try:
        forms.clean_edit(dl, new_body, headers, schema_id)
    except ValidationError as e:
        raise ApiError(400, "invalid request", e.message_dict) from e
    try:
        record = actions.do_edit_and_replay(
            request.user,
            dl,
            new_body.encode(),
            headers,
            reason,
            key,
            via=request.auth_via or "api",
            schema_id=schema_id,
        )
    except SchemaMismatch as e:
        raise ApiError(
            400,
            "the schema refuses the edited body",
            {k if k == "schema_id" else f"body.{k}" if k else "body": v for k, v in e.errors.items()},
        ) from e
    except Conflict as e:
        raise ApiError(409, str(e)) from e
    return JsonResponse(
        {"replay": record.pk, "destination": f"{record.broker}:{record.connection}/{record.destination}"}, status=201
    )
