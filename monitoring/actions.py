"""Writes of the monitoring app: offset resets (as Operations), alert-rule changes (admin, audited), acknowledging
incidents and silencing rules (operator, audited)."""

from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from brokers.base import BrokerError
from console import brokers
from console.actions import Conflict, do_start_operation, find_repeat, record_audit
from console.models import Operation
from console.operations import ParameterError
from monitoring.models import AlertRule, Incident


def preview_reset(params: dict):
    """The dry run: old → new per partition, nothing written. Conflict while the group has members or when a shift
    has nothing committed to shift from; ParameterError for a partition the topic lacks."""
    try:
        adapter = brokers.get("kafka", params.get("connection"))
        return adapter.reset_offsets(
            params["group"], params["topic"], params["to"], params["value"], True, params.get("partitions")
        )
    except ValueError as e:
        raise ParameterError({"partitions": [str(e)]}) from e
    except (BrokerError, brokers.NotConfigured) as e:
        raise Conflict(str(e)) from e


def do_reset_offsets(actor, params: dict, reason: str, idempotency_key: str, via: str = "web"):
    """Start the reset as an Operation. A repeated key returns the first operation; a new one is dry-run first, so
    what the broker would refuse (members in the group, a shift with nothing committed, a missing partition) is
    refused up front instead of as a failed operation."""
    if not Operation.objects.filter(idempotency_key=idempotency_key).exists():
        changes = preview_reset(params)
        if params["to"] == "shift":
            # A shift is relative: run twice (a worker killed after the broker moved the offsets, before the
            # operation recorded it, is run again) it would move twice. The operation applies the offsets this dry
            # run worked out instead, which gives the same result however often it runs.
            params = {**params, "frozen": {str(c.partition): c.new for c in changes}}
    return do_start_operation(actor, "kafka_offset_reset", params, reason, idempotency_key, via)


def do_save_alert_rule(actor, rule_id: int | None, values: dict, reason: str, idempotency_key: str, via: str = "web"):
    action = "alert_rule.create" if rule_id is None else "alert_rule.update"
    repeat = find_repeat(actor, idempotency_key, action)
    if repeat is not None:
        return AlertRule.objects.get(pk=repeat.target_id)
    with transaction.atomic(durable=True):
        if rule_id is None:
            rule = AlertRule.objects.create(**values)
            before = {}
        else:
            rule = AlertRule.objects.select_for_update().filter(pk=rule_id).first()
            if rule is None:
                raise Conflict("no such rule")
            before = rule.as_json()
            for name, value in values.items():
                setattr(rule, name, value)
            rule.save(update_fields=list(values))
        record_audit(
            actor,
            action,
            "alert_rule",
            rule.pk,
            reason=reason,
            parameters={"before": before, "values": values},
            result=rule.as_json(),
            idempotency_key=idempotency_key,
            via=via,
        )
    return rule


def do_delete_alert_rule(actor, rule: AlertRule, reason: str, idempotency_key: str, via: str = "web") -> None:
    if find_repeat(actor, idempotency_key, "alert_rule.delete") is not None:
        return
    with transaction.atomic(durable=True):
        before = rule.as_json()
        record_audit(
            actor,
            "alert_rule.delete",
            "alert_rule",
            rule.pk,
            reason=reason,
            parameters={"before": before},
            idempotency_key=idempotency_key,
            via=via,
        )
        rule.delete()


def do_acknowledge_incident(actor, incident_id: int, note: str, idempotency_key: str, via: str = "web") -> Incident:
    """Say that someone is on it. Conflict if it is resolved or someone else acknowledged it first."""
    action = "incident.acknowledge"
    repeat = find_repeat(actor, idempotency_key, action)
    if repeat is not None:
        return Incident.objects.select_related("rule", "acknowledged_by").get(pk=repeat.target_id)
    try:
        with transaction.atomic(durable=True):
            incident = Incident.objects.select_for_update().select_related("rule").filter(pk=incident_id).first()
            if incident is None:
                raise Conflict("no such incident")
            if incident.acknowledged_at is not None:
                who = incident.acknowledged_by.get_username() if incident.acknowledged_by else "someone"
                raise Conflict(f"already acknowledged by {who} at {incident.acknowledged_at:%Y-%m-%d %H:%M:%S} UTC")
            if incident.resolved_at is not None:
                raise Conflict("the incident is resolved: there is nothing left to acknowledge")
            incident.acknowledged_at, incident.acknowledged_by, incident.ack_note = timezone.now(), actor, note
            incident.save(update_fields=["acknowledged_at", "acknowledged_by", "ack_note"])
            record_audit(
                actor,
                action,
                "incident",
                incident.pk,
                reason=note,
                parameters={"rule": incident.rule.name, "subject": incident.subject},
                result=incident.as_json(),
                idempotency_key=idempotency_key,
                via=via,
            )
    except IntegrityError:
        # A concurrent request with the same key won the race: answer with what it did.
        repeat = find_repeat(actor, idempotency_key, action)
        if repeat is None:
            raise
        return Incident.objects.select_related("rule", "acknowledged_by").get(pk=repeat.target_id)
    return incident


def do_silence_alert_rule(
    actor, rule_id: int, until: datetime | None, reason: str, idempotency_key: str, via: str = "web"
) -> AlertRule:
    """Silence the rule until `until`, or end its silence now when `until` is None."""
    action = "alert_rule.silence" if until is not None else "alert_rule.unsilence"
    repeat = find_repeat(actor, idempotency_key, action)
    if repeat is not None:
        return AlertRule.objects.select_related("silenced_by").get(pk=repeat.target_id)
    try:
        with transaction.atomic(durable=True):
            rule = AlertRule.objects.select_for_update().filter(pk=rule_id).first()
            if rule is None:
                raise Conflict("no such rule")
            before = {k: rule.as_json()[k] for k in ("silenced_until", "silenced_by", "silence_reason")}
            if until is None:
                if not rule.is_silenced(timezone.now()):
                    raise Conflict("the rule is not silenced")
                rule.silenced_until, rule.silenced_by, rule.silence_reason = None, None, ""
            else:
                rule.silenced_until, rule.silenced_by, rule.silence_reason = until, actor, reason
            rule.save(update_fields=["silenced_until", "silenced_by", "silence_reason"])
            record_audit(
                actor,
                action,
                "alert_rule",
                rule.pk,
                reason=reason,
                parameters={"until": until.isoformat() if until else None, "before": before},
                result=rule.as_json(),
                idempotency_key=idempotency_key,
                via=via,
            )
    except IntegrityError:
        repeat = find_repeat(actor, idempotency_key, action)
        if repeat is None:
            raise
        return AlertRule.objects.select_related("silenced_by").get(pk=repeat.target_id)
    return rule
