"""Amazon SNS, served by the SQS adapter: an `sqs` connection is an AWS account and region, and holds both.

The SQS adapter's destinations name SNS things with a prefix no SQS queue name can hold (queue names allow only
letters, digits, "-" and "_", and a ".fifo" suffix):
- "sns:<topic>": the topic. A message published there goes to every subscription (fan-out).
- "sns:<topic>/<subscription id>": one subscription. A message goes to that subscription's endpoint only, the way
  SNS delivers to it (an SQS endpoint: into its queue, as an envelope unless raw message delivery is on). A replay of
  a subscription's dead letter goes here, so the topic's other subscribers do not get the message a second time.

FIFO topics (names ending .fifo) take the message group from the key and the deduplication id from the event id,
as FIFO queues do (brokers.sqs._entry builds both). Plain Python and JSON here: the boto3 client and the mapping of
its errors belong to the SQS adapter, which hands them in.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from brokers.base import BrokerError, DestinationNotFound, TopicSubscription

PREFIX = "sns:"
# A subscription's attributes (raw delivery, endpoint, redrive policy) are looked up once per this many seconds: the
# sampler and discovery list every subscription each pass (one GetSubscriptionAttributes each), and a replay asks for
# its subscription per batch. Subscriptions made through this adapter are seen at once.
SUBSCRIPTION_CACHE_SECONDS = 60.0
PUBLISH_BATCH = 10  # SNS PublishBatch takes at most ten entries


def split(destination: str) -> tuple[str, str | None] | None:
    """(topic, subscription id or None) of an SNS destination; None for anything else (a queue)."""
    if not destination.startswith(PREFIX):
        return None
    topic, _, subscription = destination[len(PREFIX) :].partition("/")
    return topic, subscription or None


def topic_destination(topic: str) -> str:
    return PREFIX + topic


def subscription_destination(topic: str, subscription: str) -> str:
    return f"{PREFIX}{topic}/{subscription}"


def is_fifo(destination: str) -> bool:
    """Whether messages to `destination` need a group and deduplication id: a FIFO queue, a FIFO topic or one of its
    subscriptions (whose endpoint is a FIFO queue)."""
    target = split(destination)
    return (target[0] if target else destination).endswith(".fifo")


def arn_name(arn: str) -> str:
    return arn.rsplit(":", 1)[-1]


# --- the envelope SNS wraps a message in when raw message delivery is off ---


def envelope(body: bytes | str) -> dict | None:
    """The SNS notification envelope `body` holds (what SNS delivers to SQS and HTTP endpoints without raw message
    delivery: Type, MessageId, TopicArn, Subject, Message, Timestamp, signature fields, UnsubscribeURL,
    MessageAttributes), else None. Never raises: any body may come from any publisher."""
    head = body[:64].lstrip()
    if head[:1] not in (b"{", "{"):
        return None
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if (
        isinstance(data, dict)
        and data.get("Type") == "Notification"
        and isinstance(data.get("TopicArn"), str)
        and isinstance(data.get("Message"), str)
    ):
        return data
    return None


def envelope_attributes(data: dict) -> dict[str, bytes]:
    """The envelope's MessageAttributes ({"Type": "String" | "Number" | "Binary" ..., "Value": text, base64 for
    Binary}) as header bytes. What does not have that shape is kept as its JSON text rather than dropped."""
    found: dict[str, bytes] = {}
    attributes = data.get("MessageAttributes")
    if not isinstance(attributes, dict):
        return found
    for name, attribute in attributes.items():
        if not isinstance(name, str):
            continue
        value = attribute.get("Value") if isinstance(attribute, dict) else attribute
        kind = str(attribute.get("Type") or "") if isinstance(attribute, dict) else ""
        if kind.startswith("Binary") and isinstance(value, str):
            try:
                found[name] = base64.b64decode(value, validate=True)
                continue
            except (binascii.Error, ValueError):
                pass
        if isinstance(value, str):
            found[name] = value.encode("utf-8", "surrogatepass")
        else:
            found[name] = json.dumps(value).encode()
    return found


def envelope_subscription(data: dict) -> str | None:
    """The ARN of the subscription the envelope was delivered for: its UnsubscribeURL names it."""
    url = data.get("UnsubscribeURL")
    if not isinstance(url, str):
        return None
    try:
        arns = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).get("SubscriptionArn")
    except ValueError:
        return None
    return arns[0] if arns else None


def envelope_origin(data: dict) -> str:
    """ "sns:<topic>/<subscription>" for an envelope that names its subscription, else "sns:<topic>"."""
    topic_arn = data["TopicArn"]
    subscription = envelope_subscription(data)
    if subscription and subscription.startswith(topic_arn + ":"):
        return subscription_destination(arn_name(topic_arn), arn_name(subscription))
    return topic_destination(arn_name(topic_arn))


def topic_entry(entry: dict) -> dict:
    """An SQS SendMessageBatch entry (brokers.sqs._entry) as an SNS PublishBatch entry. A body that is a delivered
    notification (a replayed dead letter of a subscription without raw delivery) is unwrapped: the topic gets the
    message that was published, or every subscriber would receive an envelope inside an envelope."""
    out: dict[str, Any] = {"Id": entry["Id"], "Message": entry["MessageBody"]}
    data = envelope(entry["MessageBody"])
    if data is not None:
        out["Message"] = data["Message"]
        if isinstance(data.get("Subject"), str) and data["Subject"]:
            out["Subject"] = data["Subject"][:100]
    for name in ("MessageAttributes", "MessageGroupId", "MessageDeduplicationId"):
        if name in entry:
            out[name] = entry[name]
    return out


def endpoint_entry(entry: dict, raw: bool) -> dict:
    """An SQS entry for a subscription's queue. Without raw delivery the body is the envelope, which carries the
    message attributes itself: the ones the envelope holds are not repeated as the queue message's attributes (SNS
    sets none there, and SQS allows ten)."""
    if raw:
        return entry
    data = envelope(entry["MessageBody"])
    if data is None or "MessageAttributes" not in entry:
        return entry
    inside = envelope_attributes(data)
    attributes = {k: v for k, v in entry["MessageAttributes"].items() if k not in inside}
    out = {k: v for k, v in entry.items() if k != "MessageAttributes"}
    if attributes:
        out["MessageAttributes"] = attributes
    return out


class Topics:
    """The SNS half of an SQS adapter. `call(operation, **params)` runs one boto3 SNS call and maps its errors (a
    missing topic or subscription to DestinationNotFound, the rest to BrokerError / BrokerUnavailable)."""

    def __init__(self, call: Callable[..., dict]):
        self._call = call
        self._arns: dict[str, str] = {}
        self._subscriptions: dict[tuple[str, str], tuple[float, TopicSubscription]] = {}
        self._listings: dict[str | None, tuple[float, list[TopicSubscription]]] = {}
        self._lock = threading.Lock()

    def _pages(self, operation: str, key: str, **params: Any) -> list[dict]:
        items, token = [], None
        while True:
            page = self._call(operation, **params, **({"NextToken": token} if token else {}))
            items += page.get(key, [])
            token = page.get("NextToken")
            if not token:
                return items

    def topics(self) -> list[str]:
        arns = [t["TopicArn"] for t in self._pages("list_topics", "Topics")]
        with self._lock:
            self._arns.update((arn_name(arn), arn) for arn in arns)
        return sorted(arn_name(arn) for arn in arns)

    def topic_arn(self, name: str) -> str:
        arn = self._arns.get(name)
        if arn is None:
            self.topics()
            arn = self._arns.get(name)
            if arn is None:
                raise DestinationNotFound(f"no SNS topic called {name!r}")
        return arn

    def ensure_topic(self, name: str, attributes: dict[str, str] | None = None) -> None:
        attrs = {"FifoTopic": "true"} if name.endswith(".fifo") else {}
        attrs.update(attributes or {})
        arn = self._call("create_topic", Name=name, Attributes=attrs)["TopicArn"]
        with self._lock:
            self._arns[name] = arn

    def delete_topic(self, name: str) -> None:
        try:
            self._call("delete_topic", TopicArn=self.topic_arn(name))
        except DestinationNotFound:
            pass
        with self._lock:
            self._arns.pop(name, None)

    def add_subscription(self, topic: str, protocol: str, endpoint: str, attributes: dict[str, str] | None = None):
        """Subscribe `endpoint` (for protocol sqs: a queue ARN) with `attributes` (RawMessageDelivery,
        RedrivePolicy, FilterPolicy ...); returns its TopicSubscription."""
        with self._lock:
            self._listings.clear()
        arn = self._call(
            "subscribe",
            TopicArn=self.topic_arn(topic),
            Protocol=protocol,
            Endpoint=endpoint,
            Attributes=dict(attributes or {}),
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
        return self._describe(arn)

    def _describe(self, arn: str) -> TopicSubscription:
        a = self._call("get_subscription_attributes", SubscriptionArn=arn).get("Attributes", {})
        topic = arn_name(a.get("TopicArn") or arn.rsplit(":", 1)[0])
        dlq = None
        try:
            policy = json.loads(a["RedrivePolicy"]) if a.get("RedrivePolicy") else {}
            dlq = arn_name(policy.get("deadLetterTargetArn") or "") or None
        except (ValueError, AttributeError, TypeError):
            dlq = None  # a policy that does not parse names no DLQ
        sid = arn_name(arn)
        return TopicSubscription(
            topic=topic,
            subscription=sid,
            arn=arn,
            protocol=a.get("Protocol", ""),
            endpoint=a.get("Endpoint", ""),
            raw=str(a.get("RawMessageDelivery", "false")).lower() == "true",
            dead_letter_queue=dlq,
            destination=subscription_destination(topic, sid),
        )

    def subscriptions(self, topic: str | None = None) -> list[TopicSubscription]:
        """Every confirmed subscription (of `topic`), with its raw-delivery setting and dead-letter queue."""
        cached = self._listings.get(topic)
        if cached is not None and time.monotonic() - cached[0] < SUBSCRIPTION_CACHE_SECONDS:
            return list(cached[1])
        if topic is None:
            listed = self._pages("list_subscriptions", "Subscriptions")
        else:
            listed = self._pages("list_subscriptions_by_topic", "Subscriptions", TopicArn=self.topic_arn(topic))
        found = []
        for item in listed:
            arn = item.get("SubscriptionArn", "")
            if arn.count(":") < 6:  # "PendingConfirmation" / "Deleted": not a subscription yet, or no longer
                continue
            try:
                found.append(self._describe(arn))
            except DestinationNotFound:
                continue  # unsubscribed since it was listed
        found.sort(key=lambda s: (s.topic, s.protocol, s.endpoint, s.subscription))
        with self._lock:
            self._listings[topic] = (time.monotonic(), found)
        return list(found)

    def subscription(self, topic: str, subscription: str) -> TopicSubscription:
        key = (topic, subscription)
        cached = self._subscriptions.get(key)
        if cached is not None and time.monotonic() - cached[0] < SUBSCRIPTION_CACHE_SECONDS:
            return cached[1]
        found = self._describe(f"{self.topic_arn(topic)}:{subscription}")
        with self._lock:
            self._subscriptions[key] = (time.monotonic(), found)
        return found

    def publish(self, topic: str, entries: list[dict]) -> list[dict | BrokerError]:
        """PublishBatch `entries` (SNS entries, see topic_entry) in chunks of ten; one response or error per chunk."""
        arn = self.topic_arn(topic)
        responses: list[dict | BrokerError] = []
        for start in range(0, len(entries), PUBLISH_BATCH):
            try:
                responses.append(
                    self._call(
                        "publish_batch", TopicArn=arn, PublishBatchRequestEntries=entries[start : start + PUBLISH_BATCH]
                    )
                )
            except BrokerError as exc:
                responses.append(exc)
        return responses
