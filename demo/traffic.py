"""Demo traffic: orders flow through sagas, the outbox and four brokers, and some of them break on purpose.

One `tick()` = one new order:
1. In one transaction: start a `demo.order` saga (SDK) and write outbox events for Kafka, SQS, RabbitMQ and NATS.
2. Demo consumers (dlq.consumer_kit) drain those destinations; poison messages are retried, then dead-lettered with
   Switchyard's failure headers, so the dead-letter inbox fills with a few groups of failures.
3. The Kafka consumer is throttled, so its lag rises and falls on the Consumers page.
4. Every few ticks an "external" saga (as another language would send it) arrives on the saga-events Kafka topic.
"""

import json
import logging
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction

import outbox
from brokers.base import BrokerError, OutgoingMessage
from console import brokers
from dlq.consumer_kit import RetryingConsumer
from sagas import sdk
from sagas.models import SagaInstance

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Names:
    """Demo destinations. Dead-letter names follow the conventions discovery knows (Kafka `*.DLQ`, an SQS
    RedrivePolicy, a configured RabbitMQ queue, the NATS `DLQ` stream); `suffix` keeps test runs apart."""

    suffix: str = ""

    @property
    def orders(self) -> str:
        return f"demo.orders{self.suffix}"

    @property
    def notify(self) -> str:
        return f"demo-notifications{self.suffix}"

    @property
    def shipping(self) -> str:
        return f"demo-shipping{self.suffix}"

    @property
    def audit_stream(self) -> str:
        return f"DEMO_AUDIT{self.suffix.replace('-', '_').replace('.', '_').upper()}"

    @property
    def audit_subject(self) -> str:
        return f"demo{self.suffix}.audit"

    def dlq(self, broker: str) -> str:
        return {
            "kafka": f"{self.orders}.DLQ",
            "sqs": f"{self.notify}-dlq",
            "rabbitmq": f"{self.shipping}_error",
            "nats": f"DLQ.demo{self.suffix}",
        }[broker]

    def target(self, broker: str) -> str:
        return {
            "kafka": f"kafka://{self.orders}",
            "sqs": f"sqs://{self.notify}",
            "rabbitmq": f"rabbitmq:///{self.shipping}",
            "nats": f"nats://{self.audit_subject}.orders",
        }[broker]


def teardown(names: Names) -> None:
    """Delete what setup(names) created under a suffix (tests). The shared NATS `DLQ` stream and the saga-events topic
    stay: other sources use them."""
    configured = brokers.defaults()
    doomed = {
        "kafka": [names.orders, names.dlq("kafka")],
        "sqs": [names.notify, names.dlq("sqs")],
        "rabbitmq": [names.shipping, names.dlq("rabbitmq")],
        "nats": [names.audit_stream],
    }
    for broker, destinations in doomed.items():
        for name in destinations if broker in configured else []:
            try:
                configured[broker].delete_destination(name)
            except BrokerError as exc:
                log.warning("demo teardown: %s %s: %s", broker, name, exc)


class PoisonMessage(Exception):
    pass


def setup(names: Names) -> list[str]:
    """Create the demo destinations on every configured broker; returns the brokers the demo will use."""
    configured = brokers.defaults()
    used = []
    if "kafka" in configured:
        configured["kafka"].ensure_destination(names.orders, partitions=3)
        configured["kafka"].ensure_destination(names.dlq("kafka"))
        configured["kafka"].ensure_destination(settings.SAGA_EVENTS_TOPIC)
        used.append("kafka")
    if "sqs" in configured:
        sqs = configured["sqs"]
        sqs.ensure_destination(names.dlq("sqs"))
        arn = sqs.queue_attributes(names.dlq("sqs"))["QueueArn"]
        policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "5"})
        sqs.ensure_destination(names.notify, attributes={"RedrivePolicy": policy})
        used.append("sqs")
    if "rabbitmq" in configured:
        configured["rabbitmq"].ensure_destination(names.shipping)
        configured["rabbitmq"].ensure_destination(names.dlq("rabbitmq"))
        used.append("rabbitmq")
    if "nats" in configured:
        configured["nats"].ensure_destination(names.audit_stream, subjects=[f"{names.audit_subject}.>"])
        configured["nats"].ensure_destination("DLQ", subjects=["DLQ", "DLQ.>"])
        used.append("nats")
    return used


def _handler(kind: str):
    def handle(message) -> None:
        body = json.loads(message.body)
        if body.get("payload", {}).get("poison") == kind:
            raise PoisonMessage(f"{kind}: cannot process order {body['payload'].get('order')}")

    return handle


class Demo:
    def __init__(self, rng: random.Random | None = None, names: Names | None = None):
        self.rng = rng or random.Random()
        self.names = names or Names()
        # Go on from the last run's orders, so correlation ids (ORD-…) stay unique across restarts of `make run`.
        self.order = SagaInstance.objects.filter(saga_type="demo.order").count()
        self.used = setup(self.names)
        self.consumers = []
        for broker, destination, group in (
            ("kafka", self.names.orders, "demo-billing"),
            ("sqs", self.names.notify, "demo-mailer"),
            ("rabbitmq", self.names.shipping, "demo-shipping"),
            ("nats", self.names.audit_stream, "demo-auditor"),
        ):
            if broker in self.used:
                kit = RetryingConsumer(
                    brokers.get(broker),
                    destination,
                    f"{group}{self.names.suffix}",
                    _handler(broker),
                    dead_letter_to=self.names.dlq(broker),
                    attempts=2,
                )
                self.consumers.append(kit)

    def tick(self, poison: str | None = "random") -> str:
        """One new order; returns its saga id. `poison` names the broker whose consumer will fail it (tests)."""
        self.order += 1
        amount = self.rng.randint(10, 1000)
        if poison == "random":
            poison = self.rng.choice(self.used) if self.rng.random() < 0.15 else None
        context = {"order": self.order, "amount": amount, "fragile": self.rng.random() < 0.2}
        customer = f"customer-{self.rng.randint(1, 40)}"
        payload = {"order": self.order, "amount": amount, "customer": customer, "poison": poison}
        correlation = f"ORD-{self.order:06d}"
        with transaction.atomic():
            saga_id = sdk.start("demo.order", context, correlation_id=correlation)
            for broker in self.used:
                # The saga's correlation id, so a dead letter of this event links back to its saga.
                outbox.publish(self.names.target(broker), customer, "OrderPlaced", payload, correlation_id=correlation)
        if "kafka" in self.used and self.order % 5 == 0:
            self._external_saga()
        return saga_id

    def _external_saga(self) -> None:
        """A payment saga reported by a non-Python service as JSON events on the saga-events topic."""
        saga_id = str(uuid.uuid4())
        now = datetime.now(UTC)
        failed = self.rng.random() < 0.3
        # The producer knows its saga's shape, so it says when the saga is over (saga_status wins over derivation).
        events = [
            {"step": "authorize", "direction": "execute", "status": "succeeded", "seq": 1},
            {"step": "capture", "direction": "execute", "status": "failed" if failed else "succeeded", "seq": 2}
            | ({} if failed else {"saga_status": "completed"}),
        ]
        if failed:
            events.append(
                {
                    "step": "authorize",
                    "direction": "compensate",
                    "status": "failed",
                    "seq": 3,
                    "saga_status": "compensation_failed",
                }
            )
        messages = [
            OutgoingMessage(
                settings.SAGA_EVENTS_TOPIC,
                json.dumps(
                    {
                        "event_id": str(uuid.uuid4()),
                        "saga_id": saga_id,
                        "saga_type": "demo.payment",
                        # A few milliseconds apart, as the steps happened; only a failed step carries the error.
                        "occurred_at": (now + timedelta(milliseconds=40 * e["seq"])).isoformat(),
                        "correlation_id": f"PAY-{self.order:06d}",
                        **(
                            {"error": {"type": "GatewayTimeout", "message": "PSP did not answer"}}
                            if e["status"] == "failed"
                            else {}
                        ),
                        **e,
                    }
                ).encode(),
                key=saga_id,
            )
            for e in events
        ]
        brokers.get("kafka").publish_batch(messages)

    def consume(self, budget: int) -> int:
        """Let the demo consumers handle up to `budget` messages each; a small budget makes lag visible."""
        handled = 0
        for kit in self.consumers:
            try:
                handled += kit.run_once(max_messages=budget, timeout=0.2)
            except BrokerError:
                log.warning("demo consumer %s failed", kit.consumer_name, exc_info=True)
        return handled

    def close(self) -> None:
        for kit in self.consumers:
            kit.close()
