"""Outbox test helpers: a fresh destination per broker (real services) and a relay drained in-process."""

import json
import time
import uuid
from dataclasses import dataclass

import pytest
from django.db import transaction

from brokers.base import BrokerAdapter, Message
from console import brokers
from outbox import publish
from outbox.relay import Relay

BROKERS = ["kafka", "sqs", "rabbitmq", "nats"]


@dataclass
class Target:
    broker: str
    adapter: BrokerAdapter
    name: str  # what the adapter reads and deletes: topic, queue or stream
    uri: str  # the outbox destination

    def read(self, expected: int, timeout: float = 10.0) -> list[Message]:
        if self.broker == "sqs":
            return self._consume_sqs(expected, timeout)
        # Ask for one more than expected, so a duplicate would show.
        return self.adapter.read(self.name, max_messages=expected + 1, timeout=timeout)

    def _consume_sqs(self, expected: int, timeout: float) -> list[Message]:
        """Receive and delete: a FIFO queue hands out a group's next message only once the one before is gone, so
        browsing without deleting (adapter.read) cannot see a long backlog. Receive order is the queue's order."""
        from brokers.sqs import _to_message

        url = self.adapter._queue_url(self.name)
        found: list[Message] = []
        deadline = time.monotonic() + timeout
        empty = 0
        while time.monotonic() < deadline and empty < 2:
            raw = self.adapter._call(
                "receive_message",
                QueueUrl=url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=1,
                MessageAttributeNames=["All"],
                AttributeNames=["All"],
            ).get("Messages", [])
            empty = 0 if raw else empty + 1
            found.extend(_to_message(self.name, m) for m in raw)
            if raw:
                entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(raw)]
                self.adapter._call("delete_message_batch", QueueUrl=url, Entries=entries)
        return found


def make_target(broker: str, exists: bool = True) -> Target:
    adapter = brokers.get(broker)
    name = f"sy-ob-{uuid.uuid4().hex[:10]}"
    if broker == "kafka":
        target = Target(broker, adapter, name, f"kafka://{name}")
        options = {"partitions": 3}
    elif broker == "sqs":
        name += ".fifo"  # FIFO: SQS keeps per-group (= per-key) order only in FIFO queues
        target, options = Target(broker, adapter, name, f"sqs://{name}"), {}
    elif broker == "rabbitmq":
        target, options = Target(broker, adapter, name, f"rabbitmq:///{name}"), {}  # the default exchange
    else:
        target, options = Target(broker, adapter, name, f"nats://{name}.events"), {}
    if exists:
        adapter.ensure_destination(name, **options)
    return target


@pytest.fixture
def targets():
    made: list[Target] = []

    def make(broker: str, exists: bool = True) -> Target:
        target = make_target(broker, exists)
        made.append(target)
        return target

    yield make
    for target in made:
        try:
            target.adapter.delete_destination(target.name)
        except Exception:
            pass


@pytest.fixture
def fast_retries(settings):
    settings.OUTBOX_BACKOFF_BASE_MS = 1
    settings.OUTBOX_BACKOFF_MAX_MS = 5
    settings.OUTBOX_MAX_ATTEMPTS = 3
    return settings


def drain(relay: Relay | None = None, rounds: int = 1000) -> Relay:
    """Run one relay until it finds no work (rows backing off for a few ms are waited for)."""
    import time

    relay = relay or Relay(batch_size=100)
    idle = 0
    for _ in range(rounds):
        if relay.run_once():
            idle = 0
        else:
            idle += 1
            if idle >= 3:
                break
            time.sleep(0.02)
    return relay


def publish_events(uri: str, keyed: list[tuple[str, int]], event_type: str = "order.updated") -> list:
    """Publish (key, seq) pairs in one committed transaction, in list order."""
    with transaction.atomic():
        return [publish(uri, key, event_type, {"key": key, "seq": seq}) for key, seq in keyed]


def seq_of(message: Message) -> tuple[str, int]:
    payload = json.loads(message.body)["payload"]
    return payload["key"], payload["seq"]
