"""JSON API: ingest saga events, read sagas and their history, act on a saga."""

from django.http import FileResponse, JsonResponse
from django.shortcuts import get_object_or_404

from console.access import CONTENTS_NOTE, OPERATOR, VIEWER, can_read_contents, has_role
from console.actions import Conflict
from console.api import require_reason_and_key
from console.auth import ApiError, api, json_body, json_object
from sagas import actions, queries
from sagas.forms import SagaActionForm
from sagas.models import SagaInstance
from sagas.recording import MAX_BATCH, SCHEMA_PATH, record_events, validate_event


@api(role=VIEWER)
def schema(request):
    """The JSON Schema of a saga event, as POST /api/v1/saga-events validates it."""
    return FileResponse(SCHEMA_PATH.open("rb"), content_type="application/schema+json")


@api(methods=("POST",), role=VIEWER)
def saga_events(request):
    """One event → 201 (200 for a repeat) or 400 with field errors. A list → per-item results; valid items kept.

    Reporting what a saga did is not acting on it (ADR 0013): any API token of a viewer or above may post events, so
    a machine client needs no operator rights. A browser session still needs the operator role, so a person who may
    only read cannot write history from the console.
    """
    if request.auth_via != "token" and not has_role(request.user, OPERATOR):
        raise ApiError(403, "posting saga events needs an API token (viewer role or above) or the operator role")
    body = json_body(request)
    if isinstance(body, dict):
        event, errors = validate_event(body)
        if errors:
            raise ApiError(400, "invalid saga event", errors)
        result = record_events([event])[0]
        return JsonResponse(
            {"event_id": event["event_id"], "result": result}, status=201 if result == "created" else 200
        )
    if not isinstance(body, list) or not body:
        raise ApiError(400, "the body must be one saga event (an object) or a non-empty list of them")
    if len(body) > MAX_BATCH:
        raise ApiError(400, f"at most {MAX_BATCH} events per request")
    results: list[dict] = [{} for _ in body]
    valid, positions = [], []
    for index, item in enumerate(body):
        event, errors = validate_event(item)
        if errors:
            results[index] = {"index": index, "result": "invalid", "fields": errors}
        else:
            valid.append(event)
            positions.append(index)
    for index, outcome in zip(positions, record_events(valid), strict=True):
        results[index] = {"index": index, "event_id": body[index]["event_id"], "result": outcome}
    counts = {k: sum(r["result"] == k for r in results) for k in ("created", "duplicate", "invalid")}
    if not valid:  # a 400 says why in `error`, like every other refusal; the per-item fields follow
        return JsonResponse({"error": "no event in the list is valid", **counts, "results": results}, status=400)
    return JsonResponse({**counts, "results": results}, status=200)


@api(role=VIEWER)
def sagas(request):
    """Sagas newest update first, 50 a page (keyset `cursor`); the list page's filters as query parameters."""
    form = queries.SagaFilterForm(request.GET)
    if not form.is_valid():
        raise ApiError(400, "invalid filter", {k: list(v) for k, v in form.errors.items()})
    rows, next_cursor, total, exact = queries.page(form)
    return JsonResponse(
        {
            "sagas": [s.as_json(context=False) for s in rows],
            "next_cursor": next_cursor,
            # Named before small totals were counted exactly; total_is_estimate says which it is.
            "estimated_total": total,
            "total_is_estimate": not exact,
        }
    )


@api(role=VIEWER)
def saga(request, saga_id):
    """One saga: derived state, data (unless SWITCHYARD_CONTENTS_ROLE hides it), and a page of its step events
    (`page`, `failed_only`)."""
    instance = get_object_or_404(SagaInstance, pk=saga_id)
    try:
        page_number = max(1, int(request.GET.get("page", 1)))
    except ValueError:
        raise ApiError(400, "invalid request", {"page": ["must be a positive integer"]}) from None
    events, more = queries.timeline(instance, page_number, request.GET.get("failed_only") in ("1", "true"))
    readable = can_read_contents(request.user)
    return JsonResponse(
        {
            **instance.as_json(context=readable),
            **({} if readable else {"contents_hidden": CONTENTS_NOTE}),
            "steps": actions.step_order(instance),
            "events": [e.as_json() for e in events],
            "next_page": page_number + 1 if more else None,
        }
    )


@api(methods=("POST",), role=OPERATOR)
def saga_action(request, saga_id, action):
    """POST {reason, idempotency_key, ...}: retry-step, retry-compensation, compensate, resolve or skip, run as an
    operation."""
    if action not in actions.ACTIONS:
        raise ApiError(404, f"unknown action {action!r}; use one of {', '.join(actions.ACTIONS)}")
    instance = get_object_or_404(SagaInstance, pk=saga_id)
    body = json_object(request)
    params = action_params(action, body)
    try:
        if body.get("preview"):
            return JsonResponse({"preview": actions.preview(instance, action, params)})
        reason, key = require_reason_and_key(body)
        op, created = actions.do_start_saga_action(
            request.user, instance, action, params, reason, key, via=request.auth_via or "api"
        )
    except Conflict as e:
        raise ApiError(409, str(e)) from e
    return JsonResponse({"operation": op.as_json()}, status=202 if created else 200)


def action_params(action: str, body: dict) -> dict:
    """The parameters each action takes, checked by the form the page and the `saga` command use too."""
    form = SagaActionForm(action, body)
    if not form.is_valid():
        raise ApiError(400, "invalid request", form.field_errors())
    return form.params()


@api(methods=("POST",), role=OPERATOR)
def bulk_action(request, action):
    """Preview freezes the target set (explicit ids, or all matching a filter) and returns it signed with its count
    and a sample; starting with that selection runs one operation over exactly those sagas."""
    if action not in actions.ACTIONS:
        raise ApiError(404, f"unknown action {action!r}; use one of {', '.join(actions.ACTIONS)}")
    body = json_object(request)
    params = action_params(action, body)
    if body.get("preview"):
        return JsonResponse({"preview": actions.freeze_selection(action, _bulk_targets(body))})
    reason, key = require_reason_and_key(body)
    if not isinstance(body.get("selection"), str):
        raise ApiError(400, "invalid request", {"selection": ["preview first and send the selection it returned"]})
    try:
        saga_ids = actions.thaw_selection(action, body["selection"])
        op, created = actions.do_start_bulk_saga_action(
            request.user, action, saga_ids, params, reason, key, via=request.auth_via or "api"
        )
    except Conflict as e:
        raise ApiError(409, str(e)) from e
    return JsonResponse({"operation": op.as_json()}, status=202 if created else 200)


def _bulk_targets(body: dict) -> list[str]:
    if "saga_ids" in body:
        ids = body["saga_ids"]
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise ApiError(400, "invalid request", {"saga_ids": ["must be a non-empty list of saga ids"]})
        if len(ids) > actions.BULK_MAX:  # the same cap as a filter: one operation stays resumable and reviewable
            raise ApiError(400, f"more than {actions.BULK_MAX} saga ids: send them in several requests")
        return queries.existing_ids(ids)
    form = queries.SagaFilterForm(body.get("filter") or {})
    if not form.is_valid():
        raise ApiError(400, "invalid filter", {k: list(v) for k, v in form.errors.items()})
    ids = queries.matching_ids(form, actions.BULK_MAX)
    if ids is None:
        raise ApiError(400, f"more than {actions.BULK_MAX} sagas match: narrow the filter")
    return ids
