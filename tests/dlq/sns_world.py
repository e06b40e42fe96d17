"""SNS on moto for the dead-letter tests: a topic, subscriptions with SQS endpoints and redrive policies, and a way to
fail a delivery the way SNS does (moto delivers every message; the tests move what SNS delivered into the DLQ)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from brokers.base import TopicSubscription
from console import brokers


@dataclass
class Subscribed:
    topic: str
    endpoint: str  # the subscribed queue
    dlq: str  # the queue its redrive policy names
    subscription: TopicSubscription


class SnsWorld:
    def __init__(self):
        self.adapter = brokers.get("sqs")
        self.made: list[str] = []

    def queue(self, name: str | None = None) -> str:
        name = name or f"sy-q-{uuid.uuid4().hex[:10]}"
        self.adapter.ensure_destination(name)
        self.made.append(name)
        return name

    def topic(self, fifo: bool = False) -> str:
        name = f"sy-topic-{uuid.uuid4().hex[:10]}" + (".fifo" if fifo else "")
        self.adapter.ensure_destination(f"sns:{name}")
        self.made.append(f"sns:{name}")
        return name

    def arn(self, queue: str) -> str:
        return self.adapter.queue_attributes(queue)["QueueArn"]

    def subscribe(self, topic: str, raw: bool = False, dlq: str | None = None, endpoint: str | None = None):
        """A queue subscribed to `topic` whose failed deliveries go to `dlq` (a new queue unless given)."""
        endpoint = endpoint or self.queue()
        dlq = dlq or self.queue(f"{endpoint}-dlq")
        attributes = {
            "RawMessageDelivery": "true" if raw else "false",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": self.arn(dlq)}),
        }
        subscription = self.adapter.add_subscription(topic, "sqs", self.arn(endpoint), attributes)
        return Subscribed(topic, endpoint, dlq, subscription)

    def receive(self, queue: str, expected: int = 1) -> list[dict]:
        """Receive and delete, with every attribute, as boto3 gives them."""
        url = self.adapter._queue_url(queue)
        found: list[dict] = []
        for _ in range(10):
            raw = self.adapter._call(
                "receive_message",
                QueueUrl=url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=1,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            found += raw
            if raw:
                entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(raw)]
                self.adapter._call("delete_message_batch", QueueUrl=url, Entries=entries)
            if len(found) >= expected and (expected or not raw):
                break
        return found

    def fail_delivery(self, sub: Subscribed, expected: int = 1) -> list[dict]:
        """Move what SNS delivered to the subscription's endpoint into its DLQ, as SNS moves a delivery it gave up
        on: the same body, and the same message attributes (raw delivery puts the message's there)."""
        moved = self.receive(sub.endpoint, expected)
        url = self.adapter._queue_url(sub.dlq)
        for m in moved:
            params = {"QueueUrl": url, "MessageBody": m["Body"]}
            if m.get("MessageAttributes"):
                params["MessageAttributes"] = m["MessageAttributes"]
            if sub.dlq.endswith(".fifo"):
                params["MessageGroupId"] = m["Attributes"].get("MessageGroupId", "default")
                params["MessageDeduplicationId"] = m["MessageId"]
            self.adapter._call("send_message", **params)
        return moved

    def close(self) -> None:
        for name in reversed(self.made):
            try:
                self.adapter.delete_destination(name)
            except Exception:
                pass


def sns_world():
    """For a fixture in the test module: `sns = pytest.fixture(sns_world)`."""
    from dlq import ingest

    world = SnsWorld()
    yield world
    ingest.close_all()
    world.close()


def documented_envelope(topic_arn: str, subscription_arn: str, message: str, attributes: dict | None = None) -> str:
    """A notification as the SNS developer guide shows one delivered to an SQS endpoint without raw delivery
    ("Amazon SNS message and JSON formats": the HTTP/S notification document; SQS receives the same JSON)."""
    region = topic_arn.split(":")[3]
    document = {
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": topic_arn,
        "Subject": "My First Message",
        "Message": message,
        "Timestamp": "2012-05-02T00:54:06.655Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLEw6JRN...",
        "SigningCertURL": f"https://sns.{region}.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem",
        "UnsubscribeURL": f"https://sns.{region}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={subscription_arn}",
    }
    if attributes is not None:
        document["MessageAttributes"] = attributes
    return json.dumps(document, indent=2)
