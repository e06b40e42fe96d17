"""Pages: the Consumers list (live), one target's detail with partitions, charts and the offset reset, alerts."""

import uuid
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from console.access import ADMIN, OPERATOR, VIEWER
from console.actions import Conflict
from console.auth import ApiError, require_role
from console.brokers import NotConfigured
from console.forms import ReasonForm
from console.operations import ParameterError
from console.views import HtmxHttpRequest
from monitoring import actions, queries
from monitoring.api import clean_until
from monitoring.models import BROKERS, AlertRule, ConsumerTarget, Incident, Status
from monitoring.operations import validate_reset


class SilenceForm(ReasonForm):
    until = forms.CharField(max_length=64)  # checked by api.clean_until, shared with the API


class AcknowledgeForm(forms.Form):
    note = forms.CharField(max_length=2000, required=False)
    idempotency_key = forms.CharField(max_length=200)


def _get_target_for_viewer(broker: str, name: str) -> ConsumerTarget:
    return get_object_or_404(ConsumerTarget, broker=broker, name=name)


@require_GET
@require_role(VIEWER)
def consumers(request: HtmxHttpRequest):
    status, broker = request.GET.get("status", ""), request.GET.get("broker", "")
    q = request.GET.get("q", "").strip()[:200]
    rows = queries.targets(status, broker, q=q)
    queries.attach_sparklines(rows)
    # A filter change swaps the whole live block, socket included: its URL carries the filter, so rows the sampler
    # finds later are appended only if this filter shows them.
    template = "monitoring/consumers.html" + ("#live" if request.htmx else "")
    live_query = urlencode({k: v for k, v in (("status", status), ("broker", broker), ("q", q)) if v})
    ctx = {"targets": rows, "status": status, "broker": broker, "q": q, "brokers": BROKERS, "nav": "consumers"}
    ctx["live_query"] = live_query
    ctx["statuses"] = Status.values
    return render(request, template, ctx)


@require_GET
@require_role(VIEWER)
def consumer_detail(request, broker, name):
    target = _get_target_for_viewer(broker, name)
    parts = queries.partitions(target) if target.kind == ConsumerTarget.Kind.GROUP else []
    ctx = {"target": target, "partitions": parts, "key": str(uuid.uuid4()), "nav": "consumers"}
    ctx["ranges"] = list(queries.RANGES)
    return render(request, "monitoring/consumer.html", ctx)


@require_POST
@require_role(OPERATOR)
def offset_reset(request, group):
    """Step 1 (no `confirm`): the dry run, shown as old → new. Step 2 (`confirm`): start the reset operation."""
    target = _get_target_for_viewer("kafka", group)
    raw = {k: request.POST.get(k) or None for k in ("topic", "to", "value")}
    try:
        params = validate_reset({**raw, "group": group})
        if not request.POST.get("confirm"):
            changes = actions.preview_reset(params["group"], params["topic"], params["to"], params["value"])
            ctx = {"target": target, "params": params, "changes": changes, "nav": "consumers"}
            ctx.update(reason=request.POST.get("reason", ""), key=request.POST.get("idempotency_key") or uuid.uuid4())
            return render(request, "monitoring/reset_preview.html", ctx)
        reason = (request.POST.get("reason") or "").strip()
        if not reason:
            raise Conflict("a reason is required")
        op, _ = actions.do_reset_offsets(request.user, params, reason, request.POST.get("idempotency_key", ""))
    except ParameterError as e:
        messages.error(request, str(e))
    except (Conflict, NotConfigured) as e:
        messages.error(request, f"Offset reset refused: {e}")
    else:
        return redirect("operation", operation_id=op.pk)
    return redirect(target.get_absolute_url())


@require_GET
@require_role(VIEWER)
def alerts(request):
    return _alerts_page(request)


def _alerts_page(request, failed: dict | None = None):
    """The page; `failed` re-shows one silence or acknowledge form with its error and what was typed (a 400)."""
    rules = AlertRule.objects.select_related("silenced_by").order_by("pk")
    incidents = Incident.objects.select_related("rule", "acknowledged_by").order_by("-opened_at")[:50]
    ctx = {"rules": rules, "incidents": incidents, "kinds": AlertRule.Kind.choices, "nav": "consumers"}
    ctx.update(key=str(uuid.uuid4()), brokers=BROKERS, failed=failed or {})
    return render(request, "monitoring/alerts.html", ctx, status=400 if failed else 200)


def _errors(form) -> str:
    return "; ".join(f"{name}: {' '.join(errs)}" for name, errs in form.errors.items())


@require_POST
@require_role(OPERATOR)
def alert_rule_silence(request, rule_id):
    rule = get_object_or_404(AlertRule, pk=rule_id)
    form = SilenceForm(request.POST)
    failed = {"rule": rule.pk, "values": request.POST}
    if not form.is_valid():
        return _alerts_page(request, {**failed, "error": _errors(form)})
    data = form.cleaned_data
    try:
        until = clean_until(data["until"])
        actions.do_silence_alert_rule(request.user, rule.pk, until, data["reason"], data["idempotency_key"])
    except ApiError as e:
        return _alerts_page(request, {**failed, "error": "; ".join(" ".join(v) for v in e.fields.values())})
    except Conflict as e:
        return _alerts_page(request, {**failed, "error": str(e)})
    messages.success(request, f"Rule {rule.name!r} silenced until {until:%Y-%m-%d %H:%M} UTC.")
    return redirect("alerts")


@require_POST
@require_role(OPERATOR)
def alert_rule_unsilence(request, rule_id):
    rule = get_object_or_404(AlertRule, pk=rule_id)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        return _alerts_page(request, {"rule": rule.pk, "values": request.POST, "error": _errors(form)})
    try:
        actions.do_silence_alert_rule(
            request.user, rule.pk, None, form.cleaned_data["reason"], form.cleaned_data["idempotency_key"]
        )
    except Conflict as e:
        messages.error(request, str(e))
    else:
        messages.success(request, f"Rule {rule.name!r} pages again.")
    return redirect("alerts")


@require_POST
@require_role(OPERATOR)
def incident_acknowledge(request, incident_id):
    incident = get_object_or_404(Incident, pk=incident_id)
    form = AcknowledgeForm(request.POST)
    failed = {"incident": incident.pk, "values": request.POST}
    if not form.is_valid():
        return _alerts_page(request, {**failed, "error": _errors(form)})
    try:
        actions.do_acknowledge_incident(
            request.user, incident.pk, form.cleaned_data["note"].strip(), form.cleaned_data["idempotency_key"]
        )
    except Conflict as e:
        return _alerts_page(request, {**failed, "error": str(e)})
    messages.success(request, f"Incident {incident.subject!r} acknowledged.")
    return redirect("alerts")


def _rule_from_post(request) -> dict:
    body = {k: request.POST.get(k, "") for k in ("name", "kind", "webhook_url", "email")}
    body.update({k: request.POST.get(k, "") for k in ("broker", "target_name", "topic", "saga_type", "destination")})
    for name in ("threshold", "minutes", "seconds"):
        try:
            body[name] = int(request.POST.get(name) or 0)
        except ValueError:
            body[name] = -1
    body["enabled"] = request.POST.get("enabled", "on") == "on"
    return body


def _rule_error(request, e) -> None:
    messages.error(request, "; ".join(f"{k}: {' '.join(v)}" for k, v in e.fields.items()) or e.message)


@require_POST
@require_role(ADMIN)
def alert_rule_create(request):
    from monitoring.api import clean_rule

    try:
        values = clean_rule(_rule_from_post(request))
        reason = (request.POST.get("reason") or "").strip() or "created on the Alerts page"
        actions.do_save_alert_rule(request.user, None, values, reason, request.POST.get("idempotency_key", ""))
    except ApiError as e:
        _rule_error(request, e)
    except Conflict as e:
        messages.error(request, str(e))
    else:
        messages.success(request, "Rule saved.")
    return redirect("alerts")


@require_POST
@require_role(ADMIN)
def alert_rule_update(request, rule_id):
    from monitoring.api import clean_rule

    rule = get_object_or_404(AlertRule, pk=rule_id)
    try:
        values = clean_rule(_rule_from_post(request))
        reason = (request.POST.get("reason") or "").strip() or "changed on the Alerts page"
        actions.do_save_alert_rule(request.user, rule.pk, values, reason, request.POST.get("idempotency_key", ""))
    except ApiError as e:
        _rule_error(request, e)
    except Conflict as e:
        messages.error(request, str(e))
    else:
        messages.success(request, f"Rule {rule.name!r} saved.")
    return redirect("alerts")


@require_POST
@require_role(ADMIN)
def alert_rule_delete(request, rule_id):
    rule = get_object_or_404(AlertRule, pk=rule_id)
    reason = (request.POST.get("reason") or "").strip()
    if not reason:
        messages.error(request, "A reason is required to delete a rule.")
        return redirect("alerts")
    try:
        actions.do_delete_alert_rule(request.user, rule, reason, request.POST.get("idempotency_key", ""))
    except Conflict as e:
        messages.error(request, str(e))
    else:
        messages.success(request, f"Rule {rule.name!r} deleted.")
    return redirect("alerts")
