"""Replaying an SNS subscription's dead letter on moto: to that subscription's endpoint only, as SNS would have
delivered it; to the topic (every subscriber again) only by the explicit, audited choice republish_to_topic."""

import json
import re
import uuid

import pytest

from console.models import AuditEntry, Operation
from console.operations import execute
from dlq import discovery, ingest
from dlq.models import DeadLetter, DeadLetterSource, ReplayRecord
from tests.dlq.conftest import wait_until
from tests.dlq.sns_world import documented_envelope, sns_world

sns = pytest.fixture(sns_world)


def _dead_letter(sns, raw: bool):
    """A topic with two subscriptions; the second processed the message, the first failed it into its DLQ."""
    topic = sns.topic()
    failed, healthy = sns.subscribe(topic, raw=raw), sns.subscribe(topic, raw=raw)
    sns.adapter.publish(f"sns:{topic}", b'{"order": 42}', headers={"x-correlation-id": "r-1", "tenant": "t-1"})
    assert len(sns.receive(healthy.endpoint)) == 1
    [delivered] = sns.fail_delivery(failed)
    discovery.discover()
    source = DeadLetterSource.objects.get(broker="sqs", destination=failed.dlq)
    dl = wait_until(lambda: ingest.run_once(source) and DeadLetter.objects.filter(source=source).first(), 30)
    return topic, failed, healthy, delivered, dl


def _replay(world, body: dict):
    client = world.client(world.operator)
    body = {"reason": "endpoint fixed", "idempotency_key": uuid.uuid4().hex, **body}
    return client.post("/api/v1/dead-letters/replay", body, content_type="application/json")


@pytest.mark.parametrize("raw", [False, True], ids=["enveloped", "raw"])
def test_it_replays_to_the_subscription_endpoint_only(world, sns, raw):
    topic, failed, healthy, delivered, dl = _dead_letter(sns, raw)
    response = _replay(world, {"ids": [dl.pk]})
    assert response.status_code == 201, response.content
    assert execute(response.json()["operation"]["id"]) == "succeeded"
    assert ReplayRecord.objects.get(dead_letter=dl).destination == failed.subscription.destination

    [again] = sns.receive(failed.endpoint)
    assert again["Body"] == delivered["Body"]  # what SNS delivered to this endpoint, byte for byte
    attributes = {k: v.get("StringValue") for k, v in again.get("MessageAttributes", {}).items()}
    assert attributes["x-switchyard-replay-of"] == str(dl.pk)
    if raw:
        assert attributes["tenant"] == "t-1"
    else:
        # The envelope carries the message attributes; they are not repeated on the queue message.
        assert "tenant" not in attributes
        assert json.loads(again["Body"])["MessageAttributes"]["tenant"]["Value"] == "t-1"
    assert sns.receive(healthy.endpoint, expected=0) == []  # the other subscriber does not get it a second time


def test_it_refuses_the_topic_as_a_destination_without_the_explicit_choice(world, sns):
    topic, failed, healthy, delivered, dl = _dead_letter(sns, raw=False)
    response = _replay(world, {"ids": [dl.pk], "destination": f"sns:{topic}"})
    assert response.status_code == 400
    assert "fans out to every subscriber" in response.json()["fields"]["destination"][0]
    assert sns.receive(healthy.endpoint, expected=0) == []


def test_it_republishes_to_the_topic_when_asked_and_audits_it(world, sns):
    topic, failed, healthy, delivered, dl = _dead_letter(sns, raw=False)
    response = _replay(world, {"ids": [dl.pk], "republish_to_topic": True})
    assert response.status_code == 201, response.content
    op_id = response.json()["operation"]["id"]
    assert execute(op_id) == "succeeded"
    assert ReplayRecord.objects.get(dead_letter=dl).destination == f"sns:{topic}"

    for sub in (failed, healthy):
        [copy] = sns.receive(sub.endpoint)
        envelope = json.loads(copy["Body"])
        assert json.loads(envelope["Message"]) == {"order": 42}  # the message, not an envelope in an envelope
        assert envelope["MessageAttributes"]["tenant"]["Value"] == "t-1"
    entry = AuditEntry.objects.get(operation_id=op_id, action="operation.start")
    assert entry.parameters["republish_to_topic"] is True


def test_it_rejects_a_republish_choice_that_is_not_true_or_false(world, sns):
    *_, dl = _dead_letter(sns, raw=True)
    response = _replay(world, {"ids": [dl.pk], "republish_to_topic": "yes"})
    assert response.status_code == 400
    assert "republish_to_topic" in response.json()["fields"]


def test_it_offers_republishing_in_the_preview_with_its_warning(world, sns):
    topic, failed, healthy, delivered, dl = _dead_letter(sns, raw=False)
    client = world.client(world.operator)
    page = client.post("/dead-letters/replay/preview", {"ids": [str(dl.pk)]}).content.decode()
    assert 'data-testid="replay-sns-note"' in page and "fans out to every subscriber" in page
    selection = re.search(r'name="selection" value="([^"]+)"', page).group(1)

    form = {"selection": selection, "reason": "to all", "idempotency_key": "form-1", "republish_to_topic": "on"}
    response = client.post("/dead-letters/replay", form)
    assert response.status_code == 302
    op = Operation.objects.get(idempotency_key="form-1")
    assert op.parameters["republish_to_topic"] is True
    assert execute(op.pk) == "succeeded"
    assert len(sns.receive(healthy.endpoint)) == 1


def test_it_edits_and_replays_to_the_subscription_endpoint(world, sns):
    topic, failed, healthy, delivered, dl = _dead_letter(sns, raw=True)
    client = world.client(world.operator)
    body = {"body": '{"order": 43}', "headers": {"tenant": "t-2"}, "reason": "fixed", "idempotency_key": "e-1"}
    response = client.post(f"/api/v1/dead-letters/{dl.pk}/edit-replay", body, content_type="application/json")
    assert response.status_code == 201, response.content
    [copy] = sns.receive(failed.endpoint)
    assert copy["Body"] == '{"order": 43}' and copy["MessageAttributes"]["tenant"]["StringValue"] == "t-2"
    assert sns.receive(healthy.endpoint, expected=0) == []


def test_it_replays_a_fifo_subscription_dead_letter_in_its_group(world, sns):
    topic = sns.topic(fifo=True)
    base = topic[9:19]
    failed = sns.subscribe(
        topic, raw=True, dlq=sns.queue(f"sy-f-{base}-dlq.fifo"), endpoint=sns.queue(f"sy-f-{base}.fifo")
    )
    sns.adapter.publish(f"sns:{topic}", b"first", key="order-1", headers={"x-event-id": "evt-1"})
    sns.fail_delivery(failed)
    discovery.discover()
    source = DeadLetterSource.objects.get(broker="sqs", destination=failed.dlq)
    dl = wait_until(lambda: ingest.run_once(source) and DeadLetter.objects.filter(source=source).first(), 30)

    response = _replay(world, {"ids": [dl.pk]})
    assert execute(response.json()["operation"]["id"]) == "succeeded"
    [again] = sns.receive(failed.endpoint)
    assert again["Body"] == "first" and again["Attributes"]["MessageGroupId"] == "order-1"


def test_it_refuses_a_dead_letter_whose_origin_is_a_topic_unless_republishing(world, sns):
    """An envelope that names no subscription, in a DLQ that several share: its origin is the topic itself."""
    shared = sns.queue()
    topic = sns.topic()
    first, second = sns.subscribe(topic, dlq=shared), sns.subscribe(topic, dlq=shared)
    envelope = json.loads(documented_envelope(first.subscription.arn.rsplit(":", 1)[0], "", "hello"))
    del envelope["UnsubscribeURL"]
    sns.adapter.publish(shared, json.dumps(envelope).encode())
    discovery.discover()
    source = DeadLetterSource.objects.get(broker="sqs", destination=shared)
    dl = wait_until(lambda: ingest.run_once(source) and DeadLetter.objects.filter(source=source).first(), 30)
    assert dl.origin == f"sns:{topic}"

    op_id = _replay(world, {"ids": [dl.pk]}).json()["operation"]["id"]
    execute(op_id)
    op = Operation.objects.get(pk=op_id)
    assert "fans out to every subscriber" in op.errors[0]["error"]
    assert not ReplayRecord.objects.filter(dead_letter=dl).exists()
    assert sns.receive(first.endpoint, expected=0) == []

    assert (
        execute(_replay(world, {"ids": [dl.pk], "republish_to_topic": True}).json()["operation"]["id"]) == "succeeded"
    )
    for sub in (first, second):
        [copy] = sns.receive(sub.endpoint)
        assert json.loads(copy["Body"])["Message"] == "hello"


def test_it_republishes_from_the_command_line_only_with_the_flag(world, sns):
    from io import StringIO

    from django.core.management import call_command

    topic, failed, healthy, delivered, dl = _dead_letter(sns, raw=False)
    out = StringIO()
    call_command(
        "dlq", "replay", "--user", "operator", "--reason", "all again", "--key", "cli-1", "--ids", str(dl.pk),
        "--republish-to-topic", "--foreground", stdout=out,
    )  # fmt: skip
    assert "succeeded" in out.getvalue()
    assert Operation.objects.get(idempotency_key="cli-1").parameters["republish_to_topic"] is True
    assert len(sns.receive(healthy.endpoint)) == 1 and len(sns.receive(failed.endpoint)) == 1


def test_it_replays_to_a_fifo_endpoint_again_within_the_deduplication_window(world, sns):
    """Two replays of one letter while the first still waits in the FIFO endpoint: each is a new delivery on purpose
    (the event id alone would make the second a duplicate of the first, dropped by SQS)."""
    topic = sns.topic(fifo=True)
    base = topic[9:19]
    failed = sns.subscribe(
        topic, raw=True, dlq=sns.queue(f"sy-d-{base}-dlq.fifo"), endpoint=sns.queue(f"sy-d-{base}.fifo")
    )
    sns.adapter.publish(f"sns:{topic}", b"once", key="order-9", headers={"x-event-id": "evt-9"})
    sns.fail_delivery(failed)
    discovery.discover()
    source = DeadLetterSource.objects.get(broker="sqs", destination=failed.dlq)
    dl = wait_until(lambda: ingest.run_once(source) and DeadLetter.objects.filter(source=source).first(), 30)

    ops = []
    for _ in range(2):
        ops.append(_replay(world, {"ids": [dl.pk]}).json()["operation"]["id"])
        assert execute(ops[-1]) == "succeeded"
    received = sns.receive(failed.endpoint, expected=2)
    assert [m["Body"] for m in received] == ["once", "once"]
    ids = [m["Attributes"]["MessageDeduplicationId"] for m in received]
    assert ids == [f"evt-9:replay:{ops[0]}:1", f"evt-9:replay:{ops[1]}:2"]
