"""SNS subscriptions' dead-letter queues on moto: found from the redrive policies, ingested with or without raw
message delivery (origin = topic and subscription, message attributes as headers), and no envelope can break it."""

import base64
import json

import pytest

from dlq import discovery, ingest
from dlq.models import DeadLetter, DeadLetterSource
from tests.dlq.conftest import wait_until
from tests.dlq.sns_world import documented_envelope, sns_world

sns = pytest.fixture(sns_world)


def _source(dlq: str) -> DeadLetterSource:
    discovery.discover()
    return DeadLetterSource.objects.get(broker="sqs", destination=dlq)


def _ingest(source: DeadLetterSource, expected: int) -> list[DeadLetter]:
    def done():
        ingest.run_once(source, timeout=1)
        return DeadLetter.objects.filter(source=source).count() >= expected

    wait_until(done, 30)
    return list(DeadLetter.objects.filter(source=source).order_by("id"))


def test_it_discovers_the_dlq_a_subscription_redrive_policy_names(db, sns):
    topic = sns.topic()
    sub = sns.subscribe(topic)
    source = _source(sub.dlq)
    assert source.kind == DeadLetterSource.Kind.DISCOVERED
    assert source.connection_key == "sqs:default"
    assert source.origin == sub.subscription.destination == f"sns:{topic}/{sub.subscription.subscription}"


def test_it_leaves_the_origin_to_each_envelope_when_subscriptions_share_a_dlq(db, sns):
    shared = sns.queue()
    first, second = sns.subscribe(sns.topic(), dlq=shared), sns.subscribe(sns.topic(), dlq=shared)
    assert first.subscription.subscription != second.subscription.subscription
    assert _source(shared).origin == ""


def test_it_ingests_an_enveloped_delivery_with_its_attributes_as_headers(db, sns):
    topic = sns.topic()
    sub = sns.subscribe(topic, raw=False)
    sns.adapter.publish(
        f"sns:{topic}", b'{"order": 42}', headers={"x-correlation-id": "req-9", "x-message-type": "OrderPlaced"}
    )
    [delivered] = sns.fail_delivery(sub)
    assert "MessageAttributes" not in delivered  # without raw delivery SNS sets none on the queue message

    [dl] = _ingest(_source(sub.dlq), 1)
    assert dl.origin == sub.subscription.destination
    assert dl.headers["x-correlation-id"] == "req-9"
    assert dl.correlation_id == "req-9" and dl.message_type == "OrderPlaced"
    envelope = json.loads(dl.body_bytes())
    assert envelope["Type"] == "Notification" and json.loads(envelope["Message"]) == {"order": 42}
    assert dl.body_bytes() == delivered["Body"].encode()  # kept as SNS delivered it
    assert dl.parse_error == ""
    assert dl.convention == "sns-envelope"


def test_it_ingests_a_raw_delivery_with_the_subscription_as_origin(world, sns):
    topic = sns.topic()
    sub = sns.subscribe(topic, raw=True)
    sns.adapter.publish(f"sns:{topic}", b"plain text, not json", headers={"x-message-type": "Ping", "tenant": "t-1"})
    sns.fail_delivery(sub)

    source = _source(sub.dlq)
    [dl] = _ingest(source, 1)
    assert dl.origin == sub.subscription.destination
    assert dl.body_bytes() == b"plain text, not json"
    assert dl.headers["tenant"] == "t-1" and dl.message_type == "Ping"
    assert dl.convention == "sns-raw"
    # The sources page says which convention the source's dead letters follow.
    page = world.client(world.viewer).get("/dead-letters/sources/").content.decode()
    assert "Amazon SNS subscription (raw delivery)" in page


def test_it_takes_topic_and_subscription_from_a_documented_envelope(db, sns):
    """A DLQ shared by two subscriptions: the envelope's TopicArn and UnsubscribeURL say which one failed."""
    shared = sns.queue()
    sns.subscribe(sns.topic(), dlq=shared)
    second = sns.subscribe(sns.topic(), dlq=shared)
    topic_arn = second.subscription.arn.rsplit(":", 1)[0]
    attributes = {
        "x-correlation-id": {"Type": "String", "Value": "c-7"},
        "amount": {"Type": "Number", "Value": "12.50"},
        "signature": {"Type": "Binary", "Value": base64.b64encode(b"\x00\xffsig").decode()},
    }
    body = documented_envelope(topic_arn, second.subscription.arn, '{"id": 7}', attributes)
    sns.adapter.publish(shared, body.encode())

    [dl] = _ingest(_source(shared), 1)
    assert dl.origin == second.subscription.destination
    assert dl.correlation_id == "c-7"
    assert dl.headers["amount"] == "12.50"
    assert dl.header_bytes()["signature"] == b"\x00\xffsig"


def _envelope(**fields) -> str:
    document = {"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:123456789012:t", "Message": "m"}
    document.update(fields)
    return json.dumps(document)


HOSTILE = [
    _envelope(MessageAttributes="not an object"),
    _envelope(
        MessageAttributes={
            "bad-binary": {"Type": "Binary", "Value": "!!! not base64"},
            "nested": {"Type": "String", "Value": {"deep": [1, 2]}},
            "nul\u0000name": {"Type": "String", "Value": "a\u0000b"},
            "number": {"Type": "Number", "Value": 12},
            "bare": "no type at all",
            "surrogate": {"Type": "String", "Value": "\ud800"},
        }
    ),
    _envelope(MessageAttributes={f"a{i}": {"Type": "String", "Value": "x" * 100} for i in range(300)}),
    _envelope(UnsubscribeURL="http://[::1"),
    _envelope(UnsubscribeURL=12, TopicArn=""),
    _envelope(TopicArn="no-colons-at-all", Subject=None),
    _envelope(Message=12),
    '{"Type": "Notification", "TopicArn": "x", "Message": "m", "Deep": ' + "[" * 50_000 + "]" * 50_000 + "}",
    '{"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:1:t", "Message": "trunc',
    " ",
]


def test_it_ingests_hostile_envelopes_and_keeps_going(db, sns):
    topic = sns.topic()
    sub = sns.subscribe(topic)
    for body in HOSTILE:
        sns.adapter.publish(sub.dlq, body.encode("utf-8", "surrogatepass"))
    sns.adapter.publish(sub.dlq, b"\xff\xfe{ not utf-8")  # travels base64-encoded (x-body-encoding), read as bytes
    source = _source(sub.dlq)

    rows = _ingest(source, len(HOSTILE) + 1)
    assert len(rows) == len(HOSTILE) + 1
    assert {bytes(dl.body_bytes()) for dl in rows} >= {b"\xff\xfe{ not utf-8", b" "}
    with_attributes = next(dl for dl in rows if "bad-binary" in dl.headers)
    assert with_attributes.headers["bad-binary"] == "!!! not base64"
    assert with_attributes.headers["number"] == "12"
    assert json.loads(with_attributes.headers["nested"]) == {"deep": [1, 2]}
    many = next(dl for dl in rows if "a299" in dl.headers)
    assert len([k for k in many.headers if k.startswith("a")]) == 300

    # The worker is still running: a good delivery after them is ingested as usual.
    sns.adapter.publish(f"sns:{topic}", b'{"ok": true}', headers={"x-correlation-id": "after"})
    sns.fail_delivery(sub)
    rows = _ingest(source, len(HOSTILE) + 2)
    assert rows[-1].correlation_id == "after" and rows[-1].origin == sub.subscription.destination


@pytest.mark.parametrize("raw", [False, True], ids=["enveloped", "raw"])
def test_it_ingests_hostile_messages_published_through_sns(db, sns, raw):
    topic = sns.topic()
    sub = sns.subscribe(topic, raw=raw)
    bodies = [b"\x00\xff\xfe binary", b"\x00", "na\u00efve \U0001f600".encode(), b"x" * 200_000]
    # moto 5.2's raw delivery drops a message with a Binary attribute (it passes the value on undecoded), so the
    # binary attribute rides only the enveloped delivery here; a raw one arrives as an SQS Binary attribute, which
    # the SQS adapter reads as bytes (tests/dlq/test_hostile_ingest.py).
    headers = {"text": "caf\u00e9", **({} if raw else {"bin": b"\xff\x00"})}
    for body in bodies:
        sns.adapter.publish(f"sns:{topic}", body, headers=headers)
    sns.fail_delivery(sub, expected=len(bodies))

    rows = _ingest(_source(sub.dlq), len(bodies))
    assert len(rows) == len(bodies)
    for dl in rows:
        assert dl.origin == sub.subscription.destination and dl.headers["text"] == "caf\u00e9"
        assert raw or dl.header_bytes()["bin"] == b"\xff\x00"
    if raw:
        assert sorted(dl.body_bytes() for dl in rows) == sorted(bodies)
    else:
        # Enveloped: the message travels as text, base64 when it was not, and says so in its attributes.
        messages = [json.loads(dl.body_bytes())["Message"] for dl in rows]
        decoded = [
            base64.b64decode(m) if dl.headers.get("x-body-encoding") == "base64" else m.encode()
            for m, dl in zip(messages, rows, strict=True)
        ]
        assert sorted(decoded) == sorted(bodies)


def test_it_ingests_a_fifo_subscription_dlq(db, sns):
    topic = sns.topic(fifo=True)
    endpoint = sns.queue(f"sy-q-{topic[9:19]}.fifo")
    dlq = sns.queue(f"sy-q-{topic[9:19]}-dlq.fifo")
    sub = sns.subscribe(topic, raw=True, dlq=dlq, endpoint=endpoint)
    sns.adapter.publish(f"sns:{topic}", b"first", key="order-1", headers={"x-event-id": "evt-1"})
    sns.fail_delivery(sub)

    [dl] = _ingest(_source(dlq), 1)
    assert dl.origin == sub.subscription.destination
    assert dl.key_bytes() == b"order-1" and dl.body_bytes() == b"first"
