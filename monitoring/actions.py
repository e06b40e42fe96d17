"""Writes of the monitoring app: offset resets (as Operations) and alert-rule changes (admin, audited)."""

from django.db import transaction

from brokers.base import BrokerError
from console import brokers
from console.actions import Conflict, do_start_operation, find_repeat, record_audit
from monitoring.models import AlertRule

RULE_FIELDS = ("name", "kind", "threshold", "minutes", "webhook_url", "email", "enabled")


def preview_reset(group: str, topic: str, to: str, value: int | None):
    """The dry run: old → new per partition, nothing written. Conflict while the group has members."""
    adapter = brokers.get("kafka")
    try:
        return adapter.reset_offsets(group, topic, to, value, dry_run=True)
    except BrokerError as e:
        raise Conflict(str(e)) from e


def do_reset_offsets(actor, params: dict, reason: str, idempotency_key: str, via: str = "web"):
    """Start the reset as an Operation; refused (Conflict) up front while the group has members."""
    members = {g.name: g.members for g in brokers.get("kafka").consumer_groups()}.get(params["group"], 0)
    if members:
        raise Conflict(f"group {params['group']!r} has {members} active member(s); stop its consumers first")
    return do_start_operation(actor, "kafka_offset_reset", params, reason, idempotency_key, via)


def do_save_alert_rule(actor, rule_id: int | None, values: dict, reason: str, idempotency_key: str, via: str = "web"):
    repeat = find_repeat(actor, idempotency_key)
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
            "alert_rule.create" if rule_id is None else "alert_rule.update",
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
    if find_repeat(actor, idempotency_key) is not None:
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
