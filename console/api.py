"""JSON API for the platform: operations, audit, brokers, the caller's identity."""

import uuid

from django.http import JsonResponse

from console import brokers
from console.access import OPERATOR, VIEWER, has_role, role_of
from console.actions import (
    Conflict,
    do_approve_operation,
    do_control_operation,
    do_reject_operation,
    do_start_operation,
)
from console.auth import ApiError, api, json_object
from console.forms import ApiReasonForm, AuditFilterForm, audit_queryset
from console.models import Operation
from console.operations import KINDS, ParameterError, get_kind

PAGE_SIZE = 100


def require_reason_and_key(body: dict) -> tuple[str, str]:
    """Every API action carries a non-empty reason and an idempotency key; the form names each missing or
    wrong-typed one (every app's api.py calls this)."""
    form = ApiReasonForm(body)
    if not form.is_valid():
        raise ApiError.invalid(form)
    return form.cleaned_data["reason"], form.cleaned_data["idempotency_key"]


def _operation(operation_id) -> Operation:
    try:
        uuid.UUID(str(operation_id))
    except ValueError:
        raise ApiError(404, "no such operation") from None
    op = Operation.objects.select_related("requested_by", "approved_by").filter(pk=operation_id).first()
    if op is None:
        raise ApiError(404, "no such operation")
    return op


@api(methods=("GET", "POST"), role=VIEWER)
def operations(request):
    """GET lists operations newest first (`status`, `kind`); POST {kind, parameters, reason, idempotency_key}
    starts one."""
    if request.method == "POST":
        return _start_operation(request)
    ops = Operation.objects.select_related("requested_by", "approved_by").order_by("-created_at")
    for name in ("status", "kind"):
        if request.GET.get(name):
            ops = ops.filter(**{name: request.GET[name]})
    return JsonResponse({"operations": [op.as_json() for op in ops[:PAGE_SIZE]]})


def _start_operation(request):
    if not has_role(request.user, OPERATOR):
        raise ApiError(403, "the operator role is required")
    body = json_object(request)
    reason, key = require_reason_and_key(body)
    kind = get_kind(body.get("kind", ""))
    if kind is None or not kind.can_start():
        startable = sorted(k.name for k in KINDS.values() if k.can_start())
        raise ApiError(400, "invalid request", {"kind": [f"must be one of: {', '.join(startable)}"]})
    params = body.get("parameters", {})
    if not isinstance(params, dict):
        raise ApiError(400, "invalid request", {"parameters": ["must be an object"]})
    try:
        params = kind.validate(params)
        op, created = do_start_operation(request.user, kind.name, params, reason, key, via=request.auth_via or "api")
    except ParameterError as e:
        raise ApiError(400, "invalid parameters", e.fields) from e
    except Conflict as e:
        raise ApiError(409, str(e)) from e
    return JsonResponse(op.as_json(), status=201 if created else 200)


@api(role=VIEWER)
def operation(request, operation_id):
    """One operation: status, progress, errors, result, who asked and (if needed) who approved."""
    return JsonResponse(_operation(operation_id).as_json())


@api(methods=("POST",), role=OPERATOR)
def operation_control(request, operation_id, action):
    """POST {reason, idempotency_key} to .../pause, .../resume or .../cancel an operation."""
    if action not in ("pause", "resume", "cancel"):
        raise ApiError(404, f"unknown action {action!r}; use pause, resume or cancel")
    op = _operation(operation_id)
    body = json_object(request)
    reason, key = require_reason_and_key(body)
    try:
        op = do_control_operation(request.user, op.pk, action, reason, key, via=request.auth_via or "api")
    except Conflict as e:
        raise ApiError(409, str(e)) from e
    return JsonResponse(op.as_json())


@api(methods=("POST",), role=OPERATOR)
def operation_decision(request, operation_id, decision):
    """approve / reject an operation awaiting approval; its requester may do neither (409)."""
    op = _operation(operation_id)
    body = json_object(request)
    reason, key = require_reason_and_key(body)
    decide = do_approve_operation if decision == "approve" else do_reject_operation
    try:
        op = decide(request.user, op.pk, reason, key, via=request.auth_via or "api")
    except Conflict as e:
        raise ApiError(409, str(e)) from e
    return JsonResponse(op.as_json())


@api(role=VIEWER)
def audit(request):
    """Audit entries newest first (keyset `before`), by `actor`, `action`, `target_type`, `target_id`, `since` and
    `until`."""
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        raise ApiError(400, "invalid filter", {k: list(v) for k, v in form.errors.items()})
    entries = form.filter(audit_queryset())
    if form.cleaned_data.get("before"):
        entries = entries.filter(id__lt=form.cleaned_data["before"])
    page = list(entries[:PAGE_SIZE])
    return JsonResponse(
        {"entries": [e.as_json() for e in page], "next_before": page[-1].id if len(page) == PAGE_SIZE else None}
    )


@api(role=VIEWER)
def dashboard_timeline(request):
    """The dashboard over time: each chart's series per bucket over `range` (hour, day or week; default hour), with
    the filtered list behind each, and what changed in the last hour."""
    from console.dashboard import timeline
    from console.forms import TimelineForm

    form = TimelineForm(request.GET)
    if not form.is_valid():
        raise ApiError(400, "invalid request", {k: list(v) for k, v in form.errors.items()})
    return JsonResponse(timeline(form.cleaned_data["range"]))


@api(role=VIEWER)
def trace(request):
    """Everything under one `correlation` id: a section per source (sagas, outbox events, dead letters)."""
    from console import trace as tracing

    correlation = request.GET.get("correlation", "").strip()
    if not correlation or len(correlation) > 200:
        raise ApiError(400, "invalid request", {"correlation": ["give a correlation id of 1 to 200 characters"]})
    return JsonResponse({"correlation": correlation, "sections": [s.as_json() for s in tracing.sections(correlation)]})


@api(role=VIEWER)
def brokers_list(request):
    """Every broker connection: kind, name, address, how it authenticates, reachable, version, latency, and when it
    fails, the reason in words and the client's error; kinds with no connection are listed as not configured."""
    return JsonResponse({"brokers": brokers.reports()})


@api(role=VIEWER)
def broker_test(request, key):
    """Test one connection now (`kafka:prod-eu`): the same row as the list, for that connection alone."""
    try:
        conn = brokers.by_key(key)
    except brokers.NotConfigured as e:
        raise ApiError(404, str(e)) from e
    return JsonResponse(brokers.report(conn, brokers.health(conn)))


@api(role=VIEWER)
def index(request):
    """Every endpoint of this API: path, methods, the least role, and what it does (each view's own docstring).

    Read from the URL configuration and the @api decorator at request time, so it cannot fall out of date."""
    return JsonResponse({"endpoints": endpoints()})


def endpoints() -> list[dict]:
    from django.urls import get_resolver

    found = []

    def walk(patterns, prefix: str) -> None:
        for p in patterns:
            route = prefix + str(p.pattern)
            if hasattr(p, "url_patterns"):
                walk(p.url_patterns, route)
                continue
            view = p.callback
            if not route.startswith("api/v1/") or not hasattr(view, "api_role"):
                continue
            doc = (view.__doc__ or "").strip()
            summary = " ".join(doc.split("\n\n", 1)[0].split())
            found.append(
                {"path": "/" + route, "methods": list(view.api_methods), "role": view.api_role, "summary": summary}
            )

    walk(get_resolver().url_patterns, "")
    return found


@api(role=VIEWER)
def me(request):
    """Who the caller is: username, role, and how it authenticated (session or token)."""
    return JsonResponse(
        {"username": request.user.get_username(), "role": role_of(request.user), "via": request.auth_via}
    )
