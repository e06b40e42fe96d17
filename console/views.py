import json
import time
import uuid

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails

from console import brokers, metrics, processes
from console.access import ADMIN, OPERATOR, VIEWER, has_role
from console.actions import (
    Conflict,
    approval_role,
    do_approve_operation,
    do_control_operation,
    do_create_api_token,
    do_reject_operation,
    do_revoke_api_token,
    do_start_operation,
)
from console.auth import require_role
from console.forms import AuditFilterForm, ControlForm, ReasonForm, StartOperationForm, TokenForm, audit_queryset
from console.models import ApiToken, Operation
from console.operations import KINDS, ParameterError, get_kind

PAGE_SIZE = 50


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def new_key() -> str:
    return str(uuid.uuid4())


def back_to_referer(request, fallback: str) -> str:
    """The page a form was posted from (its filters, its page), so an action's message shows where the operator was;
    never another site: an off-site or missing Referer gives `fallback` (a URL or a view name)."""
    back = request.META.get("HTTP_REFERER", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return fallback
    return back


def _get_operation_for_viewer(request, operation_id) -> Operation:
    return get_object_or_404(Operation.objects.select_related("requested_by", "approved_by"), pk=operation_id)


@require_GET
@require_role(VIEWER)
def dashboard(request: HtmxHttpRequest):
    from console.dashboard import RANGES, tiles, timeline
    from console.forms import TimelineForm

    form = TimelineForm(request.GET)
    chosen = form.cleaned_data["range"] if form.is_valid() else "hour"
    ctx = {
        "tiles": tiles(),
        "nav": "dashboard",
        # Rendered here too: every chart's title and series link to their lists, and the changes show, without JS.
        "timeline": timeline(chosen),
        "ranges": list(RANGES),
        "range": chosen,
    }
    return render(request, "console/dashboard.html", ctx)


@require_GET
@require_role(VIEWER)
def operations(request: HtmxHttpRequest):
    ops = Operation.objects.select_related("requested_by").order_by("-created_at")
    status = request.GET.get("status")
    if status:
        ops = ops.filter(status=status)
    kinds = [k for k in KINDS.values() if k.can_start()]
    template = "console/operations.html" + ("#rows" if request.htmx else "")
    ctx = {"operations": ops[:PAGE_SIZE], "kinds": kinds, "key": new_key(), "status": status, "nav": "operations"}
    return render(request, template, ctx)


@require_POST
@require_role(OPERATOR)
def operation_start(request):
    form = StartOperationForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return redirect("operations")
    kind = get_kind(form.cleaned_data["kind"])
    if kind is None or not kind.can_start():
        messages.error(request, "That kind of operation cannot be started from here.")
        return redirect("operations")
    raw = {k: form.cleaned_data[k] for k in ("items", "delay_ms") if form.cleaned_data.get(k) is not None}
    try:
        params = kind.validate(raw)
        op, _ = do_start_operation(
            request.user, kind.name, params, form.cleaned_data["reason"], form.cleaned_data["idempotency_key"]
        )
    except (ParameterError, Conflict) as e:
        messages.error(request, str(e))
        return redirect("operations")
    return redirect("operation", operation_id=op.pk)


@require_GET
@require_role(VIEWER)
def operation(request: HtmxHttpRequest, operation_id):
    op = _get_operation_for_viewer(request, operation_id)
    audit = op.audit_entries.select_related("actor").order_by("created_at")
    ctx = {
        "op": op,
        "audit": audit,
        "key": new_key(),
        # Each form its own key: approving and rejecting are different requests (find_repeat tells them apart).
        "approve_key": new_key(),
        "reject_key": new_key(),
        "can_decide": op.can_be_approved_by(request.user) and has_role(request.user, approval_role(op.kind)),
        "nav": "operations",
    }
    return render(request, "console/operation.html" + ("#progress" if request.htmx else ""), ctx)


@require_POST
@require_role(OPERATOR)
def operation_control(request, operation_id):
    op = _get_operation_for_viewer(request, operation_id)
    form = ControlForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return redirect("operation", operation_id=op.pk)
    try:
        do_control_operation(
            request.user,
            op.pk,
            form.cleaned_data["action"],
            form.cleaned_data["reason"],
            form.cleaned_data["idempotency_key"],
        )
    except (Conflict, PermissionDenied) as e:
        # On the operation's page: a bare 403 would not say which role this operation needs.
        messages.error(request, str(e))
    return redirect("operation", operation_id=op.pk)


@require_POST
@require_role(OPERATOR)
def operation_decide(request, operation_id, decision: str):
    """Approve or reject an operation awaiting approval (OPERATION_APPROVAL_KINDS), as an operator other than its
    requester; the action re-checks both under the row lock."""
    op = _get_operation_for_viewer(request, operation_id)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return redirect("operation", operation_id=op.pk)
    decide = do_approve_operation if decision == "approve" else do_reject_operation
    try:
        decide(request.user, op.pk, form.cleaned_data["reason"], form.cleaned_data["idempotency_key"])
    except (Conflict, PermissionDenied) as e:
        messages.error(request, str(e))
    return redirect("operation", operation_id=op.pk)


@require_GET
@require_role(VIEWER)
def audit(request: HtmxHttpRequest):
    form = AuditFilterForm(request.GET)
    entries = audit_queryset()
    if form.is_valid():
        entries = form.filter(entries)
        if form.cleaned_data.get("before"):
            entries = entries.filter(id__lt=form.cleaned_data["before"])
    page = list(entries[: PAGE_SIZE + 1])
    more = len(page) > PAGE_SIZE
    page = page[:PAGE_SIZE]
    query = request.GET.copy()
    query.pop("before", None)
    next_url = None
    if more:
        query["before"] = page[-1].id
        next_url = "?" + query.urlencode()
    export_query = request.GET.copy()
    export_query.pop("before", None)
    ctx = {
        "form": form,
        "entries": page,
        "next_url": next_url,
        "export_url": reverse("audit_export") + ("?" + export_query.urlencode() if export_query else ""),
        "nav": "audit",
    }
    return render(request, "console/audit.html" + ("#rows" if request.htmx else ""), ctx)


@require_GET
@require_role(VIEWER)
def audit_export(request):
    """Every matching entry as JSON lines, streamed in id order so a large log never sits in memory."""
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        return JsonResponse({"error": "invalid filter", "fields": form.errors}, status=400)
    entries = form.filter(audit_queryset()).order_by("id")

    def lines():
        for entry in entries.iterator(chunk_size=500):
            yield json.dumps(entry.as_json()) + "\n"

    response = StreamingHttpResponse(lines(), content_type="application/x-ndjson")
    response["Content-Disposition"] = 'attachment; filename="switchyard-audit.jsonl"'
    return response


@require_GET
@require_role(VIEWER)
def brokers_page(request):
    return render(request, "console/brokers.html", {"rows": brokers.reports(), "nav": "brokers"})


@require_GET
@require_role(VIEWER)
def broker_test(request, key):
    """ "Test connection": one connection's health checked now, as its row (htmx swaps it in place)."""
    try:
        conn = brokers.by_key(key)
    except brokers.NotConfigured as e:
        raise Http404(str(e)) from e
    row = brokers.report(conn, brokers.health(conn))
    if request.htmx:
        return render(request, "console/brokers.html#row", {"row": row, "tested": True})
    rows = [row if r["connection"] == row["connection"] else r for r in brokers.reports()]
    return render(request, "console/brokers.html", {"rows": rows, "nav": "brokers"})


@require_GET
@require_role(VIEWER)
def trace(request):
    """One correlation id across sagas, outbox events and dead letters (console/trace.py)."""
    from console import trace as tracing

    correlation = request.GET.get("correlation", "").strip()[:200]
    found = tracing.sections(correlation) if correlation else []
    ctx = {"correlation": correlation, "sections": found, "empty": bool(correlation) and not any(s.rows for s in found)}
    return render(request, "console/trace.html", {**ctx, "nav": "trace"})


@require_GET
@require_role(VIEWER)
def tokens(request):
    rows = ApiToken.objects.select_related("user")
    if not has_role(request.user, ADMIN):
        rows = rows.filter(user=request.user)
    ctx = {"tokens": rows, "form": TokenForm(), "new_token": request.session.pop("new_token", None), "nav": "tokens"}
    return render(request, "console/tokens.html", ctx)


@require_POST
@require_role(VIEWER)
def token_create(request):
    form = TokenForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return redirect("tokens")
    # Shown once, on the next page view, then gone from the session.
    request.session["new_token"] = do_create_api_token(request.user, request.user, form.cleaned_data["name"])
    return redirect("tokens")


@require_POST
@require_role(VIEWER)
def token_revoke(request, token_id):
    token = get_object_or_404(ApiToken, pk=token_id)
    if token.user_id != request.user.pk and not has_role(request.user, ADMIN):
        raise PermissionDenied("only an admin can revoke another person's token")
    do_revoke_api_token(request.user, token, reason=request.POST.get("reason", ""))
    messages.success(request, f"Token {token.prefix}… revoked.")
    return redirect("tokens")


@require_GET
@require_role(VIEWER)
def not_yet(request, section: str, issue: int):
    """A capability whose issue has not landed: say so plainly, show no made-up data."""
    return render(request, "console/not_yet.html", {"section": section, "issue": issue, "nav": section})


@require_GET
def healthz(request):
    """Database, Redis and each broker. 200 when everything configured answers, else 503.

    Kubernetes probes ask less (deploy/k8s/web.yaml): `?probe=live`, only that this process serves (a broker outage
    restarting every pod would add a console outage to it); `?probe=ready`, that it can also reach the database."""
    probe = request.GET.get("probe")
    if probe == "live":
        return JsonResponse({"status": "ok"})
    checks: dict[str, dict] = {}
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 1)}
    except Exception as e:
        checks["database"] = {"ok": False, "error": str(e)}
    if probe == "ready":
        ok = checks["database"]["ok"]
        return JsonResponse({"status": "ok" if ok else "degraded", "checks": checks}, status=200 if ok else 503)
    checks["redis"] = metrics.redis_health()
    for row in brokers.reports():
        if not row["configured"]:
            checks[row["kind"]] = {"ok": None, "status": "not configured"}
        else:
            checks[row["connection"]] = {"ok": row["reachable"], "latency_ms": row["latency_ms"]}
            checks[row["connection"]]["version"] = row["version"]
            if row["error"]:
                checks[row["connection"]].update(reason=row["reason"], error=row["error"])
    ok = all(c["ok"] is not False for c in checks.values())
    body = {"status": "ok" if ok else "degraded", "checks": checks}
    state = processes.read()
    if state is not None:
        # Reported, never the status code: /healthz answers for this web process, which serves. A load balancer that
        # took it out of rotation because the dead-letter ingest restarts would turn one process's crash into an
        # outage of every page (ADR 0004). Monitors read `restarting`.
        body.update(processes.for_healthz(state))
        body["restarting"] = sorted(n for n, p in state["processes"].items() if p.get("state") == "restarting")
    return JsonResponse(body, status=200 if ok else 503)


@require_GET
@require_role(VIEWER)
def processes_page(request):
    """The supervised processes (`make run`): state, restarts, last exit and its last output lines, redacted."""
    state = processes.read()
    rows = []
    for name, proc in (state or {}).get("processes", {}).items():
        rows.append({"name": name, **proc, "output": [processes.redact(line) for line in proc.get("last_output", [])]})
    ctx = {"state": state, "rows": rows, "nav": "processes"}
    return render(request, "console/processes.html", ctx)


@require_GET
def metrics_view(request):
    if not has_role(request.user, VIEWER):
        return JsonResponse({"error": "the viewer role is required"}, status=403)
    body, content_type = metrics.render()
    return HttpResponse(body, content_type=content_type)


def _form_errors(form) -> str:
    return "; ".join(f"{field}: {' '.join(errs)}" for field, errs in form.errors.items())


def permission_denied(request, exception=None):
    if request.path.startswith("/api/"):
        return JsonResponse({"error": str(exception) or "permission denied"}, status=403)
    return render(request, "403.html", {"message": str(exception or "")}, status=403)


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return JsonResponse({"error": "not found"}, status=404)
    return render(request, "404.html", status=404)


def server_error(request):
    if request.path.startswith("/api/"):
        return JsonResponse({"error": "internal error; see the server log"}, status=500)
    return render(request, "500.html", status=500)


def raise_404(request, *args, **kwargs):
    raise Http404()
