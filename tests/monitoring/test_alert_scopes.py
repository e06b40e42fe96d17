"""The rules for states that wait for a person (sagas whose compensation failed, failed outbox rows), consumer rules
scoped to one broker / group / topic, and the lag threshold rule."""

from datetime import timedelta

from django.utils import timezone

from console import brokers
from monitoring.alerts import evaluate_all, firing
from monitoring.models import AlertRule, ConsumerTarget, Incident
from monitoring.sampler import sample_all
from outbox.models import OutboxEvent, OutboxRelay
from sagas.models import SagaInstance


def _saga(saga_id, saga_type, status, since):
    SagaInstance.objects.create(
        id=saga_id, saga_type=saga_type, status=status, started_at=since, updated_at=since, state_since=since
    )


def test_it_fires_per_saga_type_for_sagas_whose_compensation_failed(world):
    now = timezone.now()
    old = now - timedelta(minutes=20)
    _saga("o1", "order", "compensation_failed", old)
    _saga("o2", "order", "compensation_failed", old)
    _saga("p1", "payment", "compensation_failed", old)
    _saga("p2", "payment", "compensation_failed", now)  # not waiting long enough yet
    _saga("s1", "shipping", "running", old)  # stuck, not waiting for a person: the saga_stuck rule's business
    every = AlertRule.objects.create(name="waiting", kind="saga_compensation_failed", minutes=10)
    orders = AlertRule.objects.create(name="orders", kind="saga_compensation_failed", minutes=10, saga_type="order")

    assert firing(every, now) == {
        "sagas-compensation-failed:order": "2 order saga(s) failed to compensate and wait for an operator",
        "sagas-compensation-failed:payment": "1 payment saga(s) failed to compensate and wait for an operator",
    }
    assert list(firing(orders, now)) == ["sagas-compensation-failed:order"]
    evaluate_all(now)
    assert Incident.objects.filter(rule=every, resolved_at=None).count() == 2

    # An operator deals with the order sagas: that incident resolves, the payment one stays open.
    SagaInstance.objects.filter(saga_type="order").update(status="compensated")
    sent = evaluate_all(now + timedelta(seconds=15))
    assert sorted((state, i.rule.name, i.subject) for state, i in sent) == [
        ("resolved", "orders", "sagas-compensation-failed:order"),
        ("resolved", "waiting", "sagas-compensation-failed:order"),
    ]
    assert list(Incident.objects.filter(resolved_at=None).values_list("subject", flat=True)) == [
        "sagas-compensation-failed:payment"
    ]


def _outbox_rows(destination, n, status="failed"):
    OutboxEvent.objects.bulk_create(
        OutboxEvent(destination=destination, order_key=f"k{i}", key=f"k{i}", event_type="order.placed", status=status)
        for i in range(n)
    )


def test_it_fires_per_destination_for_failed_outbox_rows(world):
    _outbox_rows("kafka://orders", 3)
    _outbox_rows("sqs://billing", 1)
    _outbox_rows("sqs://billing", 5, status="pending")  # pending rows are the outbox_age rule's business
    _outbox_rows("nats://audit", 4, status="published")
    now = timezone.now()
    any_failed = AlertRule.objects.create(name="failed", kind="outbox_failed")
    over_one = AlertRule.objects.create(name="many failed", kind="outbox_failed", threshold=1)
    billing = AlertRule.objects.create(name="billing", kind="outbox_failed", destination="sqs://billing")

    assert firing(any_failed, now) == {
        "outbox-failed:kafka://orders": "3 outbox row(s) to kafka://orders failed and wait for a retry or skip",
        "outbox-failed:sqs://billing": "1 outbox row(s) to sqs://billing failed and wait for a retry or skip",
    }
    assert list(firing(over_one, now)) == ["outbox-failed:kafka://orders"]
    assert list(firing(billing, now)) == ["outbox-failed:sqs://billing"]

    OutboxEvent.objects.filter(destination="sqs://billing").update(status="skipped")
    assert firing(billing, now) == {}


def test_it_fires_when_outbox_events_wait_and_no_relay_reported(world):
    now = timezone.now()
    rule = AlertRule.objects.create(name="no relay", kind="outbox_no_relay", minutes=5)
    _outbox_rows("kafka://orders", 2, status="failed")  # waiting for an operator, not for a relay
    assert firing(rule, now) == {}
    _outbox_rows("kafka://orders", 3, status="pending")
    assert firing(rule, now) == {
        "outbox-relay": "3 outbox event(s) wait and no relay has reported for 5 min; none ever has"
    }
    OutboxRelay.objects.create(name="host:9", started_at=now - timedelta(hours=1), seen_at=now - timedelta(minutes=2))
    assert firing(rule, now) == {}  # it reported within the 5 minutes
    OutboxRelay.objects.filter(name="host:9").update(seen_at=now - timedelta(minutes=8))
    assert "the last one (host:9) at " in firing(rule, now)["outbox-relay"]
    evaluate_all(now)
    assert Incident.objects.get(rule=rule).subject == "outbox-relay"


def test_it_scopes_the_consumer_status_rule_to_one_broker_and_group(world):
    now = timezone.now()
    old = now - timedelta(minutes=10)
    for broker, name in (("kafka", "orders"), ("kafka", "billing"), ("sqs", "orders")):
        ConsumerTarget.objects.create(
            broker=broker, connection="default", kind="group", name=name, status="STOP", status_since=old
        )
    kafka_orders = AlertRule.objects.create(
        name="orders group", kind="consumer_status", minutes=5, broker="kafka", target_name="orders"
    )
    all_kafka = AlertRule.objects.create(name="kafka", kind="consumer_status", minutes=5, broker="kafka")
    everything = AlertRule.objects.create(name="all", kind="consumer_status", minutes=5)

    assert list(firing(kafka_orders, now)) == ["kafka:default/orders"]
    assert sorted(firing(all_kafka, now)) == ["kafka:default/billing", "kafka:default/orders"]
    assert sorted(firing(everything, now)) == ["kafka:default/billing", "kafka:default/orders", "sqs:default/orders"]


def test_it_pages_when_a_group_is_more_than_n_messages_or_s_seconds_behind(world):
    now = timezone.now()
    target = ConsumerTarget.objects.create(
        broker="sqs", connection="default", kind="queue", name="jobs", lag=120, lag_seconds=30.0
    )
    ConsumerTarget.objects.create(
        broker="sqs", connection="default", kind="queue", name="other", lag=10_000, lag_seconds=9_000.0
    )
    messages = AlertRule.objects.create(
        name="jobs backlog", kind="consumer_lag", broker="sqs", target_name="jobs", threshold=100
    )
    seconds = AlertRule.objects.create(
        name="jobs late", kind="consumer_lag", broker="sqs", target_name="jobs", threshold=1000, seconds=60
    )

    assert firing(messages, now) == {"sqs:default/jobs": "sqs:default jobs is 120 messages (limit 100) behind"}
    assert firing(seconds, now) == {}  # 120 ≤ 1000 messages, 30 ≤ 60 s
    target.lag_seconds = 75.0
    target.save(update_fields=["lag_seconds"])
    assert firing(seconds, now) == {"sqs:default/jobs": "sqs:default jobs is 75 s (limit 60 s) behind"}
    target.lag, target.lag_seconds = 0, 0.0
    target.save(update_fields=["lag", "lag_seconds"])
    assert firing(messages, now) == {} and firing(seconds, now) == {}


def test_it_judges_the_lag_of_one_topic_of_a_real_kafka_group(world, console_brokers, new_destination, unique):
    kafka = brokers.get("kafka")
    busy, quiet = new_destination(kafka), new_destination(kafka)
    for i in range(10):
        kafka.publish(busy, f"m{i}".encode())
    kafka.publish(quiet, b"x")
    group = unique("grp")
    kafka.commit_offsets(group, {(busy, 0): 2, (quiet, 0): 1})
    sample_all()
    assert ConsumerTarget.objects.get(broker="kafka", name=group).lag == 8

    def rule(topic):
        return AlertRule.objects.create(
            name=f"lag {topic}", kind="consumer_lag", broker="kafka", target_name=group, topic=topic, threshold=5
        )

    now = timezone.now()
    assert firing(rule(busy), now) == {
        f"kafka:default/{group} / {busy}": f"kafka:default {group} on {busy} is 8 messages (limit 5) behind"
    }
    assert firing(rule(quiet), now) == {}
    assert firing(rule("no-such-topic"), now) == {}

    kafka.commit_offsets(group, {(busy, 0): 10})
    sample_all()
    assert firing(rule(busy), timezone.now()) == {}


def test_it_validates_rule_scopes_with_a_message_per_field(world):
    client = world.client(world.admin)

    def create(key, **fields):
        body = {"name": "r", "reason": "on-call", "idempotency_key": key, **fields}
        return client.post("/api/v1/alert-rules", body, content_type="application/json")

    no_threshold = create("v1", kind="consumer_lag", broker="kafka", target_name="orders")
    assert no_threshold.status_code == 400 and "threshold" in no_threshold.json()["fields"]
    topic_on_queue = create("v2", kind="consumer_lag", broker="sqs", target_name="jobs", topic="t", threshold=1)
    assert topic_on_queue.status_code == 400 and "Kafka group" in topic_on_queue.json()["fields"]["topic"][0]
    name_without_broker = create("v3", kind="consumer_status", target_name="orders")
    assert name_without_broker.status_code == 400 and "broker" in name_without_broker.json()["fields"]
    wrong_scope = create("v4", kind="outbox_failed", saga_type="order")
    assert wrong_scope.status_code == 400 and "saga_type" in wrong_scope.json()["fields"]
    bad_broker = create("v5", kind="consumer_status", broker="kafak")
    assert bad_broker.status_code == 400 and "broker" in bad_broker.json()["fields"]
    assert not AlertRule.objects.exists()

    made = create("v6", kind="consumer_lag", broker="kafka", target_name="orders", topic="o", seconds=90)
    assert made.status_code == 201
    assert {k: made.json()[k] for k in ("broker", "target_name", "topic", "seconds", "threshold")} == {
        "broker": "kafka",
        "target_name": "orders",
        "topic": "o",
        "seconds": 90,
        "threshold": 0,
    }
    # A partial update is checked together with what the rule keeps: dropping the only threshold is refused.
    rule_id = made.json()["id"]
    dropped = client.post(
        f"/api/v1/alert-rules/{rule_id}",
        {"seconds": 0, "reason": "r", "idempotency_key": "v7"},
        content_type="application/json",
    )
    assert dropped.status_code == 400 and AlertRule.objects.get(pk=rule_id).seconds == 90


def test_it_creates_a_scoped_rule_on_the_alerts_page(world):
    form = {
        "name": "billing failed",
        "kind": "outbox_failed",
        "threshold": "0",
        "seconds": "0",
        "minutes": "0",
        "destination": "sqs://billing",
        "reason": "billing owns it",
        "idempotency_key": "p1",
    }
    assert world.client(world.admin).post("/consumers/alerts/create", form).status_code == 302
    rule = AlertRule.objects.get()
    assert (rule.kind, rule.destination) == ("outbox_failed", "sqs://billing")
    page = world.client(world.viewer).get("/consumers/alerts/")
    assert b"sqs://billing" in page.content and b"more than X outbox rows failed" in page.content
