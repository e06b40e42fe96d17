"""Offset reset through the API (dry run, then an audited Operation), and alerts by webhook and e-mail."""

from datetime import timedelta

from django.core import mail
from django.utils import timezone

from console import brokers
from console.models import AuditEntry, Operation
from console.operations import execute
from monitoring.alerts import evaluate_all
from monitoring.models import AlertRule, ConsumerTarget, Incident
from monitoring.sampler import sample_all


def _group_at(kafka, new_destination, unique, committed=8, sent=10):
    topic = new_destination(kafka)
    for i in range(sent):
        kafka.publish(topic, f"m{i}".encode())
    group = unique("grp")
    kafka.commit_offsets(group, {(topic, 0): committed})
    return topic, group


def test_it_dry_runs_an_offset_reset_then_moves_the_offsets_as_an_audited_operation(
    world, console_brokers, new_destination, unique
):
    kafka = brokers.get("kafka")
    topic, group = _group_at(kafka, new_destination, unique)
    client = world.client(world.operator)
    url = f"/api/v1/consumers/kafka/{group}/reset"
    preview = client.post(url, {"topic": topic, "to": "earliest"}, content_type="application/json")
    assert preview.status_code == 200
    assert preview.json()["changes"] == [{"topic": topic, "partition": 0, "old": 8, "new": 0, "delta": -8}]
    assert [o.committed for o in kafka.group_offsets(group)] == [8]  # the dry run moved nothing

    body = {"topic": topic, "to": "offset", "value": 3, "dry_run": False, "reason": "replay", "idempotency_key": "r1"}
    started = client.post(url, body, content_type="application/json")
    assert started.status_code == 202
    op_id = started.json()["operation"]["id"]
    assert execute(op_id) == "succeeded"
    assert [o.committed for o in kafka.group_offsets(group)] == [3]
    op = Operation.objects.get(pk=op_id)
    assert op.result["changes"] == [{"topic": topic, "partition": 0, "old": 8, "new": 3, "delta": -5}]
    entry = AuditEntry.objects.get(operation=op)
    assert (entry.actor, entry.reason, entry.idempotency_key) == (world.operator, "replay", "r1")
    # The same key again is the same operation, not a second reset.
    again = client.post(url, body, content_type="application/json")
    assert again.status_code == 200 and again.json()["operation"]["id"] == op_id


def test_it_refuses_a_reset_while_the_group_has_members_and_to_a_viewer(
    world, console_brokers, new_destination, unique
):
    kafka = brokers.get("kafka")
    topic = new_destination(kafka)
    kafka.publish(topic, b"x")
    group = unique("grp")
    url = f"/api/v1/consumers/kafka/{group}/reset"
    viewer = world.client(world.viewer).post(url, {"topic": topic, "to": "earliest"}, content_type="application/json")
    assert viewer.status_code == 403
    with kafka.subscribe(topic, group) as sub:
        for _ in range(60):
            if sub.poll(1, timeout=0.5):
                break
        answer = world.client(world.operator).post(
            url,
            {"topic": topic, "to": "earliest", "dry_run": False, "reason": "r", "idempotency_key": "k"},
            content_type="application/json",
        )
        assert answer.status_code == 409
        assert "active member" in answer.json()["error"]
    assert not Operation.objects.filter(kind="kafka_offset_reset").exists()


def test_it_shows_the_dry_run_on_the_page_before_the_reset(world, console_brokers, new_destination, unique):
    kafka = brokers.get("kafka")
    topic, group = _group_at(kafka, new_destination, unique)
    sample_all()
    client = world.client(world.operator)
    page = client.get(f"/consumers/kafka/{group}/")
    assert b'data-testid="reset-form"' in page.content and b'data-testid="partitions"' in page.content
    preview = client.post(f"/consumers/kafka/{group}/reset", {"topic": topic, "to": "latest", "reason": "skip"})
    assert b'data-testid="reset-preview"' in preview.content
    assert [o.committed for o in kafka.group_offsets(group)] == [8]
    assert b'data-testid="reset-form"' not in world.client(world.viewer).get(f"/consumers/kafka/{group}/").content


def test_it_notifies_once_per_incident_and_once_on_resolve(world, settings, webhook):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    url, received = webhook
    AlertRule.objects.create(
        name="consumers bad", kind="consumer_status", minutes=5, webhook_url=url, email="oncall@example.com"
    )
    now = timezone.now()
    target = ConsumerTarget.objects.create(
        broker="kafka",
        connection="default",
        kind="group",
        name="orders",
        status="STOP",
        status_since=now - timedelta(minutes=6),
    )
    evaluate_all(now)
    evaluate_all(now + timedelta(seconds=15))  # still firing: no second notification
    assert [r["state"] for r in received] == ["firing"]
    assert received[0]["subject"] == "kafka:default/orders" and "STOP" in received[0]["summary"]
    assert len(mail.outbox) == 1 and "FIRING" in mail.outbox[0].subject
    target.status = "OK"
    target.save(update_fields=["status"])
    evaluate_all(now + timedelta(seconds=30))
    evaluate_all(now + timedelta(seconds=45))
    assert [r["state"] for r in received] == ["firing", "resolved"]
    assert len(mail.outbox) == 2 and "RESOLVED" in mail.outbox[1].subject
    assert Incident.objects.get().resolved_at is not None


def test_it_lets_only_an_admin_change_rules_and_audits_it(world):
    body = {"name": "lag", "kind": "consumer_status", "minutes": 10, "reason": "on-call", "idempotency_key": "a1"}
    assert (
        world.client(world.operator).post("/api/v1/alert-rules", body, content_type="application/json").status_code
        == 403
    )
    created = world.client(world.admin).post("/api/v1/alert-rules", body, content_type="application/json")
    assert created.status_code == 201
    rule_id = created.json()["id"]
    changed = world.client(world.admin).post(
        f"/api/v1/alert-rules/{rule_id}",
        {"minutes": 3, "reason": "tighter", "idempotency_key": "a2"},
        content_type="application/json",
    )
    assert changed.json()["minutes"] == 3
    actions = list(AuditEntry.objects.filter(target_type="alert_rule").order_by("id").values_list("action", "reason"))
    assert actions == [("alert_rule.create", "on-call"), ("alert_rule.update", "tighter")]
    bad = world.client(world.admin).post(
        "/api/v1/alert-rules", {**body, "kind": "nope", "idempotency_key": "a3"}, content_type="application/json"
    )
    assert bad.status_code == 400 and "kind" in bad.json()["fields"]
