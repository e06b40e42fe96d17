"""JSON API: /api/v1/consumers, one target with partitions, its history, the offset reset, alert rules, silencing a
rule and acknowledging an incident."""

from django.core.exceptions import ValidationError
from django.http import JsonResponse

from console.access import ADMIN, OPERATOR, VIEWER
from console.actions import Conflict
from console.api import require_reason_and_key
from console.auth import ApiError, api, json_object
from console.brokers import NotConfigured
from console.operations import ParameterError
from monitoring import actions, forms, queries
from monitoring.models import AlertRule, ConsumerTarget, Incident
from monitoring.operations import describe_changes, validate_reset


def _target(broker: str, name: str) -> ConsumerTarget:
    target = queries.find_target(broker, name)
    if target is None:
        raise ApiError(404, f"no {broker} consumer, group or queue named {name!r}")
    return target


def _rule(rule_id: int) -> AlertRule:
    rule = AlertRule.objects.filter(pk=rule_id).first()
    if rule is None:
        raise ApiError(404, f"no alert rule {rule_id}")
    return rule


@api(role=VIEWER)
def consumers(request):
    """Every watched consumer group, queue and consumer with its lag, lag in seconds and status (`status`, `broker`)."""
    rows = queries.targets(request.GET.get("status", ""), request.GET.get("broker", ""))
    return JsonResponse({"consumers": [t.as_json() for t in rows]})


@api(role=VIEWER)
def consumer(request, broker, name):
    """One target with its status, why, and (Kafka groups) per-partition offsets and lag."""
    target = _target(broker, name)
    body = target.as_json()
    if target.kind == ConsumerTarget.Kind.GROUP:
        body["partitions"] = queries.partitions(target)
    return JsonResponse(body)


@api(role=VIEWER)
def consumer_history(request, broker, name):
    """One target's lag history (`range` 1h, 24h or 7d), the series the page's chart draws."""
    return JsonResponse(queries.history(_target(broker, name), request.GET.get("range", "1h")))


@api(methods=("POST",), role=OPERATOR)
def offset_reset(request, broker, group):
    """POST {topic, to, value?, partitions?, dry_run?}: `to` earliest | latest | timestamp (value: epoch ms or ISO
    8601) | offset | shift (value: N, negative rewinds); `partitions` a list (default every partition). A dry run
    (the default) answers old → new and delta per partition; dry_run false with reason and idempotency_key starts it.
    `broker` is the group's connection (`kafka:prod-eu`, or `kafka` for the default one)."""
    body = json_object(request)
    try:
        params = validate_reset({**body, "group": group, "connection": broker})
        if body.get("dry_run", True):
            rows, total = describe_changes(actions.preview_reset(params))
            return JsonResponse({"dry_run": True, **params, "changes": rows, "total_delta": total})
        reason, key = require_reason_and_key(body)
        op, created = actions.do_reset_offsets(request.user, params, reason, key, via=request.auth_via or "api")
    except ParameterError as e:
        raise ApiError(400, "invalid parameters", e.fields) from e
    except Conflict as e:
        raise ApiError(409, str(e)) from e
    except NotConfigured as e:
        raise ApiError(409, str(e)) from e
    return JsonResponse({"dry_run": False, "operation": op.as_json()}, status=202 if created else 200)


@api(methods=("GET", "POST"), role=VIEWER)
def alert_rules(request):
    """GET lists the alert rules; POST {…, reason, idempotency_key} creates one (admin role)."""
    if request.method == "GET":
        incidents = Incident.objects.select_related("rule", "acknowledged_by").order_by("-opened_at")[:100]
        return JsonResponse(
            {
                "rules": [r.as_json() for r in AlertRule.objects.select_related("silenced_by").order_by("pk")],
                "incidents": [i.as_json() for i in incidents],
            }
        )
    return _save_rule(request, None)


@api(methods=("POST", "DELETE"), role=ADMIN)
def alert_rule(request, rule_id):
    """POST {…, reason, idempotency_key} changes a rule; DELETE {reason, idempotency_key} deletes it."""
    rule = _rule(rule_id)
    if request.method == "DELETE":
        reason, key = require_reason_and_key(json_object(request))
        actions.do_delete_alert_rule(request.user, rule, reason, key, via=request.auth_via or "api")
        return JsonResponse({"deleted": rule_id})
    return _save_rule(request, rule)


def _save_rule(request, rule: AlertRule | None):
    from console.access import has_role

    if not has_role(request.user, ADMIN):
        raise ApiError(403, "the admin role is required")
    body = json_object(request)
    reason, key = require_reason_and_key(body)
    try:
        values = forms.clean_rule(body, existing=rule)
    except ValidationError as e:
        raise ApiError(400, "invalid rule", e.message_dict) from e
    rule_id = rule.pk if rule is not None else None
    try:
        rule = actions.do_save_alert_rule(request.user, rule_id, values, reason, key, via=request.auth_via or "api")
    except Conflict as e:
        raise ApiError(409, str(e)) from e
    return JsonResponse(rule.as_json(), status=201 if rule_id is None else 200)


@api(methods=("POST", "DELETE"), role=OPERATOR)
def alert_rule_silence(request, rule_id):
    """POST {until, reason, idempotency_key} silences the rule until then; DELETE {reason, idempotency_key} ends it."""
    rule = _rule(rule_id)
    body = json_object(request)
    reason, key = require_reason_and_key(body)
    try:
        until = forms.clean_until(body.get("until")) if request.method == "POST" else None
    except ValidationError as e:
        raise ApiError(400, "invalid request", e.message_dict) from e
    try:
        rule = actions.do_silence_alert_rule(request.user, rule.pk, until, reason, key, via=request.auth_via or "api")
    except Conflict as e:
        raise ApiError(409, str(e)) from e
    return JsonResponse(rule.as_json())


@api(methods=("POST",), role=OPERATOR)
def incident_acknowledge(request, incident_id):
    """POST {note?, idempotency_key}: someone is on it."""
    incident = Incident.objects.filter(pk=incident_id).first()
    if incident is None:
        raise ApiError(404, f"no incident {incident_id}")
    form = forms.AcknowledgeForm(json_object(request))
    if not form.is_valid():
        raise ApiError.invalid(form)
    try:
        incident = actions.do_acknowledge_incident(
            request.user,
            incident.pk,
            form.cleaned_data["note"],
            form.cleaned_data["idempotency_key"],
            via=request.auth_via or "api",
        )
    except Conflict as e:
        raise ApiError(409, str(e)) from e
    return JsonResponse(incident.as_json())
