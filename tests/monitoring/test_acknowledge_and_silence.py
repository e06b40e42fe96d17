"""Acknowledging an incident and silencing a rule: roles, idempotency keys, audit, the page, and a silenced rule that
opens and sends nothing until its silence ends."""

from datetime import timedelta

import pytest
from django.utils import timezone

from console.models import AuditEntry
from monitoring.alerts import evaluate_all
from monitoring.models import AlertRule, ConsumerTarget, Incident


@pytest.fixture
def stopped(db):
    """A group stopped for ten minutes: a consumer_status rule with minutes=5 fires for it."""
    return ConsumerTarget.objects.create(
        broker="kafka",
        connection="default",
        kind="group",
        name="orders",
        status="STOP",
        status_since=timezone.now() - timedelta(minutes=10),
    )


@pytest.fixture
def incident(world, stopped):
    rule = AlertRule.objects.create(name="orders stopped", kind="consumer_status", minutes=5)
    evaluate_all()
    return Incident.objects.get(rule=rule)


def _post(client, url, body):
    return client.post(url, body, content_type="application/json")


def test_it_lets_an_operator_acknowledge_an_incident_once_with_a_note_audited(world, incident):
    url = f"/api/v1/incidents/{incident.pk}/acknowledge"
    assert _post(world.client(world.viewer), url, {"idempotency_key": "v1"}).status_code == 403
    assert _post(world.client(world.operator), url, {"note": "looking"}).status_code == 400  # no idempotency key

    first = _post(world.client(world.operator), url, {"note": "restarting the consumer", "idempotency_key": "k1"})
    assert first.status_code == 200
    assert (first.json()["acknowledged_by"], first.json()["ack_note"]) == ("operator", "restarting the consumer")
    # The same key again answers with the first result and writes nothing more.
    again = _post(world.client(world.operator), url, {"note": "something else", "idempotency_key": "k1"})
    assert again.status_code == 200 and again.json()["acknowledged_at"] == first.json()["acknowledged_at"]
    assert again.json()["ack_note"] == "restarting the consumer"
    entries = AuditEntry.objects.filter(action="incident.acknowledge")
    assert list(entries.values_list("actor__username", "target_id", "reason", "idempotency_key")) == [
        ("operator", str(incident.pk), "restarting the consumer", "k1")
    ]
    # Someone else, with a new key: refused, saying who is on it.
    other = _post(world.client(world.admin), url, {"idempotency_key": "k2"})
    assert other.status_code == 409 and "already acknowledged by operator" in other.json()["error"]

    listed = world.client(world.viewer).get("/api/v1/alert-rules").json()["incidents"][0]
    assert (listed["acknowledged_by"], listed["ack_note"]) == ("operator", "restarting the consumer")


def test_it_refuses_to_acknowledge_a_resolved_incident_or_reuse_a_key_for_another_action(world, incident, stopped):
    client = world.client(world.operator)
    silence = {"until": (timezone.now() + timedelta(hours=1)).isoformat(), "reason": "r", "idempotency_key": "same"}
    assert _post(client, f"/api/v1/alert-rules/{incident.rule_id}/silence", silence).status_code == 200
    reused = _post(client, f"/api/v1/incidents/{incident.pk}/acknowledge", {"idempotency_key": "same"})
    assert reused.status_code == 409 and "different request" in reused.json()["error"]

    ConsumerTarget.objects.filter(pk=stopped.pk).update(status="OK")
    evaluate_all()
    resolved = _post(client, f"/api/v1/incidents/{incident.pk}/acknowledge", {"idempotency_key": "k3"})
    assert resolved.status_code == 409 and "resolved" in resolved.json()["error"]
    assert not AuditEntry.objects.filter(action="incident.acknowledge").exists()


def test_it_acknowledges_on_the_page_with_csrf_and_shows_who_and_when(world, incident):
    page = world.client(world.operator).get("/consumers/alerts/")
    assert f'action="/consumers/incidents/{incident.pk}/acknowledge"'.encode() in page.content
    assert b"/acknowledge" not in world.client(world.viewer).get("/consumers/alerts/").content
    url = f"/consumers/incidents/{incident.pk}/acknowledge"
    assert world.client(world.viewer).post(url, {"idempotency_key": "v"}).status_code == 403
    strict = world.client(world.operator, enforce_csrf=True)
    assert strict.post(url, {"note": "on it", "idempotency_key": "p1"}).status_code == 403
    assert Incident.objects.get(pk=incident.pk).acknowledged_at is None

    done = world.client(world.operator).post(url, {"note": "<b>on it</b>", "idempotency_key": "p1"})
    assert done.status_code == 302
    page = world.client(world.viewer).get("/consumers/alerts/")
    assert b"by operator at " in page.content and b"&lt;b&gt;on it&lt;/b&gt;" in page.content

    # A second acknowledgement is refused on the page, saying who is on it.
    late = world.client(world.admin).post(url, {"note": "me too", "idempotency_key": "p2"})
    assert late.status_code == 400 and b"already acknowledged by operator" in late.content
    assert AuditEntry.objects.filter(action="incident.acknowledge").count() == 1


def test_it_opens_and_sends_nothing_while_a_rule_is_silenced_and_fires_again_after(world, stopped, webhook):
    url, received = webhook
    rule = AlertRule.objects.create(name="orders stopped", kind="consumer_status", minutes=5, webhook_url=url)
    now = timezone.now()
    until = now + timedelta(hours=1)
    silenced = _post(
        world.client(world.operator),
        f"/api/v1/alert-rules/{rule.pk}/silence",
        {"until": until.isoformat(), "reason": "planned broker upgrade", "idempotency_key": "s1"},
    )
    assert silenced.status_code == 200
    assert (silenced.json()["silenced_by"], silenced.json()["silence_reason"]) == ("operator", "planned broker upgrade")

    assert evaluate_all(now) == []
    assert evaluate_all(until - timedelta(seconds=1)) == []
    assert not Incident.objects.exists() and received == []

    sent = evaluate_all(until + timedelta(seconds=1))
    assert [(state, i.subject) for state, i in sent] == [("firing", "kafka:default/orders")]
    assert [(r["state"], r["subject"]) for r in received] == [("firing", "kafka:default/orders")]


def test_it_resolves_quietly_during_a_silence(world, stopped, webhook):
    url, received = webhook
    rule = AlertRule.objects.create(name="orders stopped", kind="consumer_status", minutes=5, webhook_url=url)
    now = timezone.now()
    evaluate_all(now)
    assert [r["state"] for r in received] == ["firing"]
    AlertRule.objects.filter(pk=rule.pk).update(silenced_until=now + timedelta(hours=1))
    ConsumerTarget.objects.filter(pk=stopped.pk).update(status="OK")
    evaluate_all(now + timedelta(minutes=1))
    evaluate_all(now + timedelta(hours=2))  # after the silence: the resolve it swallowed is not sent late
    assert Incident.objects.get().resolved_at is not None
    assert [r["state"] for r in received] == ["firing"]


def test_it_checks_a_silence_and_lets_an_operator_end_it_audited(world):
    rule = AlertRule.objects.create(name="lag", kind="consumer_status", minutes=5)
    url = f"/api/v1/alert-rules/{rule.pk}/silence"
    client = world.client(world.operator)
    later = (timezone.now() + timedelta(hours=2)).isoformat()
    assert (
        _post(world.client(world.viewer), url, {"until": later, "reason": "r", "idempotency_key": "x"}).status_code
        == 403
    )
    missing = _post(
        client, "/api/v1/alert-rules/999999/silence", {"until": later, "reason": "r", "idempotency_key": "a"}
    )
    assert missing.status_code == 404 and missing.json()["error"] == "no alert rule 999999"
    assert _post(client, "/api/v1/incidents/999999/acknowledge", {"idempotency_key": "a"}).status_code == 404
    no_reason = _post(client, url, {"until": later, "idempotency_key": "a"})
    assert no_reason.status_code == 400 and "reason" in no_reason.json()["fields"]
    for until, message in (
        ("tomorrow", "ISO 8601"),
        ("2026-13-40T10:00:00Z", "ISO 8601"),
        ((timezone.now() - timedelta(minutes=1)).isoformat(), "future"),
        ((timezone.now() + timedelta(days=31)).isoformat(), "30 days"),
    ):
        answer = _post(client, url, {"until": until, "reason": "r", "idempotency_key": "a"})
        assert answer.status_code == 400 and message in answer.json()["fields"]["until"][0]
    rule.refresh_from_db()
    assert rule.silenced_until is None

    first = _post(client, url, {"until": later, "reason": "deploy", "idempotency_key": "s1"})
    assert first.status_code == 200
    # A repeat of the key changes nothing, even with another time.
    other_time = (timezone.now() + timedelta(hours=5)).isoformat()
    repeat = _post(client, url, {"until": other_time, "reason": "deploy", "idempotency_key": "s1"})
    assert repeat.json()["silenced_until"] == first.json()["silenced_until"]

    ended = client.delete(
        url, {"reason": "deploy done early", "idempotency_key": "s2"}, content_type="application/json"
    )
    assert ended.status_code == 200 and ended.json()["silenced_until"] is None
    not_silenced = client.delete(url, {"reason": "again", "idempotency_key": "s3"}, content_type="application/json")
    assert not_silenced.status_code == 409
    audit = AuditEntry.objects.filter(target_type="alert_rule", target_id=str(rule.pk)).order_by("id")
    assert list(audit.values_list("action", "reason", "actor__username")) == [
        ("alert_rule.silence", "deploy", "operator"),
        ("alert_rule.unsilence", "deploy done early", "operator"),
    ]


def test_it_silences_on_the_page_and_keeps_what_was_typed_on_a_bad_time(world):
    rule = AlertRule.objects.create(name="lag", kind="consumer_status", minutes=5)
    url = f"/consumers/alerts/{rule.pk}/silence"
    assert (
        world.client(world.viewer).post(url, {"until": "x", "reason": "r", "idempotency_key": "v"}).status_code == 403
    )
    client = world.client(world.operator)
    past = (timezone.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    bad = client.post(url, {"until": past, "reason": "maintenance window", "idempotency_key": "w1"})
    assert bad.status_code == 400
    assert b"must be in the future" in bad.content and b'value="maintenance window"' in bad.content
    assert AlertRule.objects.get(pk=rule.pk).silenced_until is None

    until = (timezone.now() + timedelta(hours=3)).replace(second=0, microsecond=0)
    ok = client.post(url, {"until": until.strftime("%Y-%m-%dT%H:%M"), "reason": "maintenance", "idempotency_key": "w1"})
    assert ok.status_code == 302
    assert AlertRule.objects.get(pk=rule.pk).silenced_until == until
    page = world.client(world.viewer).get("/consumers/alerts/")
    assert f"silenced until {until:%Y-%m-%d %H:%M} UTC".encode() in page.content
    assert b"by operator: maintenance" in page.content

    ended = client.post(f"/consumers/alerts/{rule.pk}/unsilence", {"reason": "done", "idempotency_key": "w2"})
    assert ended.status_code == 302 and AlertRule.objects.get(pk=rule.pk).silenced_until is None


def test_it_names_a_wrong_typed_note_or_key_of_an_acknowledge_through_the_page_s_form(world, incident):
    """The API reads an acknowledgement through AcknowledgeForm, the Alerts page's form (issue 15): a number for the
    key is named as the wrong type, not taken for a missing key, and nothing is acknowledged."""
    url = f"/api/v1/incidents/{incident.pk}/acknowledge"

    refused = _post(world.client(world.operator), url, {"note": ["on it"], "idempotency_key": 7})

    assert refused.status_code == 400
    assert refused.json()["fields"] == {"note": ["must be a string"], "idempotency_key": ["must be a string"]}
    incident.refresh_from_db()
    assert incident.acknowledged_at is None
