"""External sagas over Kafka: compensate publishes commands, replies move the saga on; ingest from the topic."""

import json
import time
import uuid

import pytest
from django.test import Client

from console import brokers, operations
from sagas.ingest import Ingestor
from sagas.models import CompensationRoute, SagaInstance, SagaStepEvent
from tests.sagas.helpers import act, ev, post_events


@pytest.fixture
def kafka():
    adapter = brokers.get("kafka")
    topics = []

    def topic(prefix):
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        adapter.ensure_destination(name)
        topics.append(name)
        return name

    yield adapter, topic
    for name in topics:
        adapter.delete_destination(name)


def test_it_publishes_compensate_commands_and_the_replies_move_the_saga_on(world, kafka):
    adapter, topic = kafka
    commands = topic("payments.commands")
    CompensationRoute.objects.create(saga_type="order", step="", broker="kafka", destination=commands)
    token = world.token(world.operator)
    post_events(
        Client(),
        token,
        [
            ev("o1", "reserve", seq=1),
            ev("o1", "charge", seq=2),
            ev("o1", "ship", status="failed", seq=3, error={"type": "Timeout", "message": "carrier down"}),
        ],
    )
    operator = world.client(world.operator)
    preview = act(operator, "o1", "compensate", step="charge", preview=True).json()["preview"]
    assert preview["steps"] == ["charge", "reserve"]  # exactly these, in this order
    response = act(operator, "o1", "compensate", key="comp-1", step="charge", reason="carrier gone")
    assert response.status_code == 202, response.content
    assert operations.execute(response.json()["operation"]["id"]) == "succeeded"
    assert SagaInstance.objects.get(pk="o1").status == "compensating"

    sent = [json.loads(m.body) for m in adapter.read(commands, max_messages=2, timeout=15)]
    assert [(c["saga_id"], c["step"], c["reason"]) for c in sent] == [
        ("o1", "charge", "carrier gone"),
        ("o1", "reserve", "carrier gone"),
    ]
    assert all(c["idempotency_key"].startswith("comp-1:") for c in sent)

    # The participant reports back as saga events: the saga ends compensated.
    post_events(
        Client(), token, [ev("o1", s, direction="compensate", seq=10 + i) for i, s in enumerate(["charge", "reserve"])]
    )
    assert SagaInstance.objects.get(pk="o1").status == "compensated"


def test_it_refuses_to_compensate_an_external_saga_without_a_route(world):
    post_events(
        Client(), world.token(world.operator), [ev("o2", "reserve", seq=1), ev("o2", "charge", status="failed", seq=2)]
    )
    response = act(world.client(world.operator), "o2", "compensate")
    assert response.status_code == 409 and "no command route" in response.json()["error"]


def test_it_ingests_events_from_the_kafka_topic(transactional_db, world, kafka):
    adapter, topic = kafka
    name = topic("saga-events")
    good = [ev("k1", "reserve", seq=1), ev("k1", "charge", seq=2, status="failed")]
    adapter.publish(name, json.dumps(good).encode())
    adapter.publish(name, json.dumps(good[0]).encode())  # a duplicate delivery
    adapter.publish(name, b"{not json")
    ingestor = Ingestor(name, f"g-{uuid.uuid4().hex[:6]}", **{"session.timeout.ms": 6000})
    try:
        deadline = time.monotonic() + 30
        while SagaStepEvent.objects.filter(saga_id="k1").count() < 2 and time.monotonic() < deadline:
            ingestor.run_once(timeout=0.5)
        saga = SagaInstance.objects.get(pk="k1")
        assert saga.status == "failed" and saga.event_count == 2
        first = SagaStepEvent.objects.get(event_id=good[0]["event_id"])
        assert (first.transport, first.destination, first.offset) == ("kafka", name, 0)
        while ingestor.rejected == 0 and time.monotonic() < deadline:
            ingestor.run_once(timeout=0.5)
        assert ingestor.rejected == 1 and ingestor.recorded == 2
    finally:
        ingestor.close()


def test_it_skips_hostile_messages_on_the_topic_and_ingests_what_follows(transactional_db, world, kafka):
    """A message nested 20,000 deep raised RecursionError out of the step: never acknowledged, read again forever."""
    adapter, topic = kafka
    name = topic("saga-events")
    for body in (b"[" * 20_000, b"[" * 20_000 + b"]" * 20_000, b'{"a": "\xff"}'):
        adapter.publish(name, body)
    adapter.publish(name, json.dumps({**ev("k3", "a", seq=1), "step": "a\u0000b"}).encode())
    adapter.publish(name, json.dumps({**ev("k3", "a", seq=1), "seq": 2**63}).encode())
    adapter.publish(name, json.dumps(ev("k3", "reserve", seq=1)).encode())
    ingestor = Ingestor(name, f"g-{uuid.uuid4().hex[:6]}", **{"session.timeout.ms": 6000})
    try:
        deadline = time.monotonic() + 30
        while not SagaStepEvent.objects.filter(saga_id="k3").exists() and time.monotonic() < deadline:
            ingestor.run_once(timeout=0.5)
        assert list(SagaStepEvent.objects.values_list("step", flat=True)) == ["reserve"]
        assert ingestor.rejected == 5 and ingestor.recorded == 1
    finally:
        ingestor.close()


def test_it_runs_the_ingest_command_until_sigterm(transactional_db, kafka, tmp_path):
    """The real command in a process of its own: the SIGTERM goes to it, never to the test run (a signal sent to
    this process after the command had returned, or before it set its handler, used to stop the whole run)."""
    import signal

    from tests.dlq import procs

    adapter, topic = kafka
    name = topic("saga-events")
    adapter.publish(name, json.dumps(ev("k2", "reserve", seq=1)).encode())
    log = tmp_path / "ingest.log"
    proc = procs.manage("ingest_saga_events", "--topic", name, "--group", f"g-{uuid.uuid4().hex[:6]}", log=log)
    try:
        deadline = time.monotonic() + 60
        while not SagaStepEvent.objects.filter(saga_id="k2").exists():
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-3000:]
        assert "stopped: 1 recorded" in log.read_text()
    finally:
        procs.kill(proc)
    assert SagaInstance.objects.get(pk="k2").status == "running"
