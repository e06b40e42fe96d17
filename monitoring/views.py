"""Pages: the Consumers list (live), one target's detail with partitions, charts and the offset reset, alerts."""

import uuid
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from console.access import ADMIN, OPERATOR, VIEWER
from console.actions import Conflict
from console.auth import require_role
from console.brokers import NotConfigured, connections
from console.forms import ReasonForm
from console.inputs import clip
from console.operations import ParameterError
from console.views import HtmxHttpRequest
from monitoring import actions, queries
from monitoring.forms import AcknowledgeForm, AlertRulePageForm, SilenceForm, clean_until
from monitoring.models import BROKERS, AlertRule, ConsumerTarget, Incident, Status
from monitoring.operations import describe_changes, reset_time, validate_reset


def _filter_choices() -> list[str]:
    """Every kind, every connection key, and the console's own backlogs: what the broker filter accepts."""
    keys = [c.key for c in connections()]
    kinds = sorted({k.partition(":")[0] for k in keys})
    return [*kinds, *(k for k in keys if len(keys) > len(kinds)), "celery", "outbox", "dlq"]


def _get_target_for_viewer(broker: str, name: str) -> ConsumerTarget:
    target = queries.find_target(broker, name)
    if target is None:
        raise Http404(f"no consumer {name!r} on {broker}")
    return target


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
    ctx = {
        "targets": rows,
        "status": status,
        "broker": broker,
        "q": q,
        "brokers": _filter_choices(),
        "nav": "consumers",
    }
    ctx["live_query"] = live_query
    ctx["statuses"] = Status.values
    return render(request, template, ctx)


@require_GET
@require_role(VIEWER)
def consumer_detail(request, broker, name):
    return _consumer_page(request, _get_target_for_viewer(broker, name))


def _consumer_page(request, target: ConsumerTarget, failed: dict | None = None, status: int = 200):
    """The page; `failed` re-shows the reset form with its error and what was typed."""
    parts = queries.partitions(target) if target.kind == ConsumerTarget.Kind.GROUP else []
    ctx = {"target": target, "partitions": parts, "key": str(uuid.uuid4()), "nav": "consumers"}
    ctx.update(ranges=list(queries.RANGES), failed=failed or {}, reset_targets=RESET_TARGETS)
    return render(request, "monitoring/consumer.html", ctx, status=status)


RESET_TARGETS = [
    ("earliest", "earliest"),
    ("latest", "latest"),
    ("datetime", "date-time (UTC)"),
    ("timestamp", "timestamp (epoch ms)"),
    ("offset", "offset"),
    ("shift", "shift by N"),
]
RESET_FIELDS = ("topic", "to", "value", "at", "partitions", "reason", "idempotency_key")


@require_POST
@require_role(OPERATOR)
def offset_reset(request, broker, group):
    """Step 1 (no `confirm`): the dry run, shown as old → new. Step 2 (`confirm`): start the reset operation. Bad input
    or a refusal re-shows the consumer page with the form as it was typed."""
    target = _get_target_for_viewer(broker, group)
    typed = {k: request.POST.get(k, "") for k in RESET_FIELDS}
    raw = {"group": group, "topic": typed["topic"] or None, "to": typed["to"] or None}
    raw["connection"] = target.connection_key
    # The page has a date-time input next to the number one; whichever the chosen target reads is the value.
    raw.update(value=(typed["at"] if typed["to"] == "datetime" else typed["value"]) or None)
    raw.update(partitions=typed["partitions"])
    try:
        params = validate_reset(raw)
        if not request.POST.get("confirm"):
            rows, total = describe_changes(actions.preview_reset(params))
            ctx = {"target": target, "params": params, "changes": rows, "total": total, "nav": "consumers"}
            ctx["uncounted"] = sum(1 for r in rows if r["delta"] is None)
            ctx.update(at=reset_time(params), reason=typed["reason"], key=typed["idempotency_key"] or uuid.uuid4())
            return render(request, "monitoring/reset_preview.html", ctx)
        reason, key = typed["reason"].strip(), typed["idempotency_key"].strip()
        fields = {"reason": ["a reason is required"]} if not reason else {}
        if not key or len(key) > 200:
            fields["idempotency_key"] = ["the form's key is missing or too long: reload the page"]
        if fields:
            raise ParameterError(fields)
        op, _ = actions.do_reset_offsets(request.user, params, reason, key)
    except ParameterError as e:
        return _consumer_page(request, target, {"values": typed, "fields": e.fields, "error": str(e)}, status=400)
    except (Conflict, NotConfigured) as e:
        return _consumer_page(request, target, {"values": typed, "error": f"Offset reset refused: {e}"}, status=409)
    return redirect("operation", operation_id=op.pk)


@require_GET
@require_role(VIEWER)
def alerts(request):
    return _alerts_page(request)


def _alerts_page(request, failed: dict | None = None):
    """The page; `failed` re-shows one form (silence, acknowledge, a rule's edit form or the new-rule form) with its
    error, its field errors and what was typed (a 400)."""
    failed = failed or {}
    if "values" in failed:  # what was typed is shown again, but a 100 KB value only by its start (console.inputs)
        failed["values"] = {k: clip(v, 1000) if isinstance(v, str) else v for k, v in failed["values"].items()}
    rules = list(AlertRule.objects.select_related("silenced_by").order_by("pk"))
    for r in rules:
        # Each edit form reads `r.form`: what was typed when this is the form that failed, else the stored rule.
        mine = failed.get("edit") == r.pk
        r.form, r.form_errors = (failed["values"], failed["fields"]) if mine else (r.as_json(), {})
    new_rule = {"threshold": 0, "seconds": 0, "minutes": 5, "enabled": True}
    if failed.get("create"):
        new_rule = failed["values"]
    incidents = Incident.objects.select_related("rule", "acknowledged_by").order_by("-opened_at")[:50]
    ctx = {"rules": rules, "incidents": incidents, "kinds": AlertRule.Kind.choices, "nav": "consumers"}
    ctx.update(key=str(uuid.uuid4()), brokers=BROKERS, failed=failed, new_rule=new_rule)
    ctx.update(new_rule_errors=failed["fields"] if failed.get("create") else {})
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
    except ValidationError as e:
        return _alerts_page(request, {**failed, "error": "; ".join(" ".join(v) for v in e.message_dict.values())})
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
            request.user, incident.pk, form.cleaned_data["note"], form.cleaned_data["idempotency_key"]
        )
    except Conflict as e:
        return _alerts_page(request, {**failed, "error": str(e)})
    messages.success(request, f"Incident {incident.subject!r} acknowledged.")
    return redirect("alerts")


def _typed_rule(request) -> dict:
    """The rule form as typed, to fill it again after a refusal; `enabled` as the checkbox last said."""
    values = {k: request.POST.get(k, "") for k in request.POST if k != "csrfmiddlewaretoken"}
    values["enabled"] = request.POST.get("enabled", "on") == "on"
    return values


def _rule_refused(request, which: dict, e: ValidationError | Conflict):
    fields = e.message_dict if isinstance(e, ValidationError) else {}  # a form's errors, by field
    error = "; ".join(f"{k}: {' '.join(v)}" for k, v in fields.items()) or str(e)
    return _alerts_page(request, {**which, "values": _typed_rule(request), "fields": fields, "error": error})


@require_POST
@require_role(ADMIN)
def alert_rule_create(request):
    form = AlertRulePageForm(request.POST)
    try:
        if not form.is_valid():
            raise ValidationError({k: list(v) for k, v in form.errors.items()})
        data = form.cleaned_data
        reason = data["reason"] or "created on the Alerts page"
        actions.do_save_alert_rule(request.user, None, data["values"], reason, data["idempotency_key"])
    except (ValidationError, Conflict) as e:
        return _rule_refused(request, {"create": True}, e)
    messages.success(request, "Rule saved.")
    return redirect("alerts")


@require_POST
@require_role(ADMIN)
def alert_rule_update(request, rule_id):
    rule = get_object_or_404(AlertRule, pk=rule_id)
    form = AlertRulePageForm(request.POST)
    try:
        if not form.is_valid():
            raise ValidationError({k: list(v) for k, v in form.errors.items()})
        data = form.cleaned_data
        reason = data["reason"] or "changed on the Alerts page"
        actions.do_save_alert_rule(request.user, rule.pk, data["values"], reason, data["idempotency_key"])
    except (ValidationError, Conflict) as e:
        return _rule_refused(request, {"edit": rule.pk}, e)
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
