"""JSON API: /api/v1/consumers, one target with partitions, its history, the offset reset, alert rules."""

from django.http import JsonResponse
from django.shortcuts import get_object_or_404

from console.access import ADMIN, OPERATOR, VIEWER
from console.actions import Conflict
from console.api import require_reason_and_key
from console.auth import ApiError, api, json_body
from console.brokers import NotConfigured
from console.operations import ParameterError
from monitoring import actions, queries
from monitoring.models import AlertRule, ConsumerTarget, Incident
from monitoring.operations import validate_reset


def _target(broker: str, name: str) -> ConsumerTarget:
    target = ConsumerTarget.objects.filter(broker=broker, name=name).first()
    if target is None:
        raise ApiError(404, f"no {broker} consumer, group or queue named {name!r}")
    return target


def _object(request) -> dict:
    body = json_body(request)
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


@api(role=VIEWER)
def consumers(request):
    rows = queries.targets(request.GET.get("status", ""), request.GET.get("broker", ""))
    return JsonResponse({"consumers": [t.as_json() for t in rows]})


@api(role=VIEWER)
def consumer(request, broker, name):
    target = _target(broker, name)
    body = target.as_json()
    if target.kind == ConsumerTarget.Kind.GROUP:
        body["partitions"] = queries.partitions(target)
    return JsonResponse(body)


@api(role=VIEWER)
def consumer_history(request, broker, name):
    return JsonResponse(queries.history(_target(broker, name), request.GET.get("range", "1h")))


@api(methods=("POST",), role=OPERATOR)
def offset_reset(request, group):
    body = _object(request)
    try:
        params = validate_reset({**body, "group": group})
    except ParameterError as e:
        raise ApiError(400, "invalid parameters", e.fields) from e
    try:
        if body.get("dry_run", True):
            changes = actions.preview_reset(params["group"], params["topic"], params["to"], params["value"])
            return JsonResponse({"dry_run": True, **params, "changes": [_change(c) for c in changes]})
        reason, key = require_reason_and_key(body)
        op, created = actions.do_reset_offsets(request.user, params, reason, key, via=request.auth_via or "api")
    except Conflict as e:
        raise ApiError(409, str(e)) from e
    except NotConfigured as e:
        raise ApiError(409, str(e)) from e
    return JsonResponse({"dry_run": False, "operation": op.as_json()}, status=202 if created else 200)


def _change(c) -> dict:
    return {"topic": c.topic, "partition": c.partition, "old": c.old, "new": c.new}


@api(methods=("GET", "POST"), role=VIEWER)
def alert_rules(request):
    if request.method == "GET":
        incidents = Incident.objects.select_related("rule").order_by("-opened_at")[:100]
        return JsonResponse(
            {
                "rules": [r.as_json() for r in AlertRule.objects.order_by("pk")],
                "incidents": [i.as_json() for i in incidents],
            }
        )
    return _save_rule(request, None)


@api(methods=("POST", "DELETE"), role=ADMIN)
def alert_rule(request, rule_id):
    rule = get_object_or_404(AlertRule, pk=rule_id)
    if request.method == "DELETE":
        reason, key = require_reason_and_key(_object(request))
        actions.do_delete_alert_rule(request.user, rule, reason, key, via=request.auth_via or "api")
        return JsonResponse({"deleted": rule_id})
    return _save_rule(request, rule.pk)


def _save_rule(request, rule_id):
    from console.access import has_role

    if not has_role(request.user, ADMIN):
        raise ApiError(403, "the admin role is required")
    body = _object(request)
    reason, key = require_reason_and_key(body)
    values = clean_rule(body, partial=rule_id is not None)
    try:
        rule = actions.do_save_alert_rule(request.user, rule_id, values, reason, key, via=request.auth_via or "api")
    except Conflict as e:
        raise ApiError(409, str(e)) from e
    return JsonResponse(rule.as_json(), status=201 if rule_id is None else 200)


def clean_rule(body: dict, partial: bool = False) -> dict:
    errors: dict[str, list[str]] = {}
    values = {}
    if not partial or "name" in body:
        if not isinstance(body.get("name"), str) or not body["name"].strip():
            errors["name"] = ["a name is required"]
        else:
            values["name"] = body["name"].strip()[:120]
    if not partial or "kind" in body:
        if body.get("kind") not in AlertRule.Kind.values:
            errors["kind"] = [f"must be one of: {', '.join(AlertRule.Kind.values)}"]
        else:
            values["kind"] = body["kind"]
    for name, low in (("threshold", 0), ("minutes", 0)):
        if name in body:
            if not isinstance(body[name], int) or body[name] < low:
                errors[name] = [f"must be an integer ≥ {low}"]
            else:
                values[name] = body[name]
    for name in ("webhook_url", "email"):
        if name in body:
            if not isinstance(body[name], str):
                errors[name] = ["must be a string"]
            elif name == "webhook_url" and body[name] and not body[name].startswith(("http://", "https://")):
                errors[name] = ["must be an http(s) URL"]
            else:
                values[name] = body[name].strip()
    if "enabled" in body:
        values["enabled"] = bool(body["enabled"])
    if errors:
        raise ApiError(400, "invalid rule", errors)
    return values
