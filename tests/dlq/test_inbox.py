"""Ingested rows, the API's filters and groups, hostile content, the loop guard, pacing, edit & replay, archive."""

import json
import uuid
from datetime import UTC, datetime

import pytest

from brokers.base import Message
from console.models import AuditEntry
from console.operations import execute
from dlq import headers as h
from dlq import ingest
from dlq.actions import purge
from dlq.models import DeadLetter, DeadLetterBody, DeadLetterSource
from dlq.operations import Pacer


@pytest.fixture
def source(db):
    return DeadLetterSource.objects.create(broker="kafka", destination="orders.DLQ")


def _store(source, n=1, body=b'{"order": 1}', headers=None, start=0):
    messages = [
        Message(
            destination=source.destination,
            body=body,
            key=b"k",
            headers=headers or {"x-exception-type": b"app.Boom", "x-message-type": b"OrderPlaced"},
            partition=0,
            offset=start + i,
            timestamp=datetime.now(UTC),
        )
        for i in range(n)
    ]
    return ingest.store(source, messages)


def test_it_dedupes_by_source_and_broker_id_and_reads_foreign_headers(source):
    spring = {"kafka_dlt-exception-fqcn": b"java.lang.IllegalStateException", "kafka_dlt-original-topic": b"orders"}
    assert len(_store(source, 3, headers=spring)) == 3
    assert _store(source, 3, headers=spring) == []  # a redelivery after a crash before the ack
    dl = DeadLetter.objects.first()
    assert dl.exception_type == "java.lang.IllegalStateException" and dl.origin == "orders"
    facts = h.parse({"MT-Fault-ExceptionType": b"System.Exception", "MT-Fault-InputAddress": b"rabbitmq://h/v/billing"})
    assert (facts.exception_type, facts.origin) == ("System.Exception", "billing")
    death = b"[{'count': 2, 'reason': 'rejected', 'queue': 'payments', 'exchange': '', 'routing-keys': ['payments']}]"
    facts = h.parse({"x-death": death})
    assert (facts.origin, facts.reason, facts.attempts) == ("payments", "rejected", 2)
    facts = h.parse({"my-error": b"Custom"}, {"headers": {"exception_type": ["my-error"]}})
    assert facts.exception_type == "Custom"


def test_it_keeps_big_bodies_outside_the_row_and_renders_hostile_ones(source, world, settings):
    deep = ("[" * 5000 + "]" * 5000).encode()
    big = b"<script>window.pwned=1</script>" + b"x" * (5 * 1024 * 1024)
    rows = [
        _store(source, body=big, start=0)[0],
        _store(source, body=b"\xff\xfe\x00<script>alert(1)</script>", start=1, headers={"h\x00": b"\xff<b>"})[0],
        _store(source, body=deep, start=2)[0],
    ]
    assert DeadLetterBody.objects.filter(dead_letter=rows[0]).exists() and rows[0].body is None
    assert DeadLetter.objects.get(pk=rows[0].pk).body_bytes() == big
    client = world.client(world.viewer)
    for dl in rows:
        response = client.get(f"/dead-letters/{dl.pk}/")
        assert response.status_code == 200
        assert b"<script>" not in response.content
    assert client.get("/dead-letters/").status_code == 200
    body = client.get(f"/api/v1/dead-letters/{rows[1].pk}").json()
    assert body["headers"]["h\ufffd"] == {"base64": "/zxiPg=="}


def test_it_filters_searches_and_groups(source, world, django_assert_max_num_queries):
    _store(source, 3, body=b'{"customer": "ada lovelace"}')
    _store(source, 2, body=b'{"customer": "alan turing"}', headers={"x-exception-type": b"app.Other"}, start=10)
    client = world.client(world.viewer)
    assert len(client.get("/api/v1/dead-letters?q=lovelace").json()["dead_letters"]) == 3
    assert client.get("/api/v1/dead-letters?header=x-exception-type=app.Other").json()["total"] == 2
    assert client.get("/api/v1/dead-letters?since=bad").status_code == 400
    groups = client.get("/api/v1/dead-letter-groups").json()["groups"]
    assert sorted(g["count"] for g in groups) == [2, 3] and len(groups[0]["hourly"]) == 24
    page = client.get("/api/v1/dead-letters?before=99999999").json()
    assert page["total"] == 5 and page["next_before"] is None
    _store(source, 60, start=100)
    with django_assert_max_num_queries(8):
        response = client.get("/dead-letters/")
    assert response.status_code == 200
    first = client.get("/api/v1/dead-letters").json()
    second = client.get(f"/api/v1/dead-letters?before={first['next_before']}").json()
    assert len(first["dead_letters"]) == 50 and len(second["dead_letters"]) == 15
    with django_assert_max_num_queries(8):
        assert client.get("/dead-letters/groups/").status_code == 200


def test_it_refuses_viewers_and_loops_and_requires_a_reason(source, world, settings):
    dl = _store(source)[0]
    body = {"ids": [dl.pk], "reason": "r", "idempotency_key": "k1", "dry_run": True}
    assert world.client(world.viewer).post("/api/v1/dead-letters/replay", body, "application/json").status_code == 403
    operator = world.client(world.operator)
    missing = operator.post("/api/v1/dead-letters/replay", {"ids": [dl.pk]}, "application/json")
    assert missing.status_code == 400 and "reason" in missing.json()["fields"]
    DeadLetter.objects.filter(pk=dl.pk).update(replay_count=settings.DLQ_MAX_REPLAYS)
    assert operator.post("/api/v1/dead-letters/replay", body, "application/json").status_code == 409
    body.update(override_loop_guard=True, idempotency_key="k2")
    response = operator.post("/api/v1/dead-letters/replay", body, "application/json")
    assert response.status_code == 201 and response.json()["count"] == 1
    assert execute(response.json()["operation"]["id"]) == "succeeded"
    dl.refresh_from_db()
    assert dl.status == "new" and dl.replays.get().dry_run  # a dry run changes nothing


def test_it_paces_replays_within_five_percent(monkeypatch):
    # A clock of the test's own: the pacer's waits are what is checked, not how a busy machine's sleep() keeps them.
    clock = [1000.0]
    monkeypatch.setattr("dlq.operations.time.monotonic", lambda: clock[0])
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    pacer = Pacer(200)
    for _ in range(0, 100, pacer.chunk(50)):
        clock[0] += 0.002  # the send itself
        pacer.took(pacer.chunk(50), sleep)
    achieved = 100 / (clock[0] - 1000.0)
    assert abs(achieved - 200) / 200 < 0.05, achieved
    assert len(slept) == 5 and all(abs(s - 0.098) < 0.003 for s in slept), slept  # 20 a chunk, ~10 chunks a second


def test_it_edits_and_replays_with_the_diff_in_the_audit(source, world, destinations):
    origin = destinations("kafka")
    source.origin = origin
    source.save(update_fields=["origin"])
    dl = _store(source, headers={"x-exception-type": b"app.Boom"})[0]
    client = world.client(world.operator)
    url = f"/api/v1/dead-letters/{dl.pk}/edit-replay"
    bad = client.post(url, {"body": "{nope", "reason": "fix", "idempotency_key": "e1"}, "application/json")
    assert bad.status_code == 400 and "JSON" in bad.json()["fields"]["body"][0]
    good = {"body": '{"order": 2}', "headers": {"x-fixed": "yes"}, "reason": "fix", "idempotency_key": "e2"}
    assert client.post(url, good, "application/json").status_code == 201
    entry = AuditEntry.objects.get(action="dead_letter.edit_replay")
    assert '+{"order": 2}' in entry.parameters["body_diff"] and "x-fixed" in entry.parameters["headers_diff"]
    from console import brokers

    sent = brokers.get("kafka").read(origin, 1, timeout=10)
    assert sent[0].body == b'{"order": 2}' and sent[0].headers["x-switchyard-replay-of"] == str(dl.pk).encode()


def test_it_archives_discards_and_purges_after_retention(source, world, settings):
    rows = _store(source, 3)
    client = world.client(world.operator)
    body = {"ids": [rows[0].pk, rows[1].pk], "reason": "noise", "idempotency_key": str(uuid.uuid4())}
    assert client.post("/api/v1/dead-letters/archive", body, "application/json").json()["changed"] == 2
    assert purge() == 0
    DeadLetter.objects.filter(status="archived").update(status_changed_at=datetime(2000, 1, 1, tzinfo=UTC))
    assert purge() == 2 and list(DeadLetter.objects.values_list("pk", flat=True)) == [rows[2].pk]
    assert json.loads(client.get("/api/v1/dead-letters").content)["total"] == 1
