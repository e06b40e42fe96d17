"""Amazon SQS, and SNS in the same account and region (brokers.sns), through boto3 (moto_server stands in for both
in tests and `make run`)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import re
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
)

from brokers import sns
from brokers.aws import aws_session
from brokers.base import (
    AUTH_REFUSED,
    HEALTH_TIMEOUT,
    BrokerAdapter,
    BrokerError,
    BrokerUnavailable,
    Capability,
    Destination,
    DestinationNotFound,
    Message,
    OutgoingMessage,
    PendingAge,
    PublishError,
    PublishResult,
    QueueDepth,
    Subscription,
    TopicSubscription,
    epoch_datetime,
    key_bytes,
    reason_for,
    secrets_of,
)

SQS_WORKERS = 6  # concurrent calls for a batch of more than 10 (moto and SQS both serve requests in parallel)
MAX_ATTRIBUTES = 10  # SQS rejects a message with more message attributes
RESERVED_ATTRIBUTES = 2  # the key and a binary body's encoding travel as attributes too
KEY_ATTRIBUTE = "x-key"
# SQS bodies are XML text: a body that is not valid UTF-8 (or holds characters XML forbids) travels base64-encoded,
# marked by this attribute, and is decoded on read.
BODY_ENCODING_ATTRIBUTE = "x-body-encoding"
_SQS_TEXT = re.compile("^[\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*$")
# read() of more than one receive's worth (10) hides what it has seen for this long so the next receive returns
# other messages, then makes them visible again; if the process dies mid-read they reappear after this.
BROWSE_HIDE_SECONDS = 30


class SqsAdapter(BrokerAdapter):
    name = "sqs"
    capabilities = frozenset(
        {Capability.QUEUE_DEPTH, Capability.REDRIVE_POLICY, Capability.PENDING_AGE, Capability.TOPIC_SUBSCRIPTIONS}
    )
    max_headers = MAX_ATTRIBUTES - RESERVED_ATTRIBUTES
    max_message_bytes = 262_144

    def __init__(
        self,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        *,
        session_token: str | None = None,
        profile: str | None = None,
        role_arn: str | None = None,
        external_id: str | None = None,
        role_session_name: str = "switchyard",
    ):
        """One account and region. Credentials: the keys given, else `profile` (from the shared AWS config and
        credentials files), else botocore's default chain; with `role_arn`, those assume the role and the role's
        temporary credentials are renewed before they expire (brokers.aws). `endpoint_url` points at a local
        emulator (moto, LocalStack), which then also serves the role's STS calls."""
        self.endpoint_url = endpoint_url
        self.region = region or "us-east-1"
        self.role_arn = role_arn
        self.profile = profile
        self._secrets = secrets_of(secret_access_key, session_token)
        session = aws_session(
            self.region,
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
            session_token=session_token,
            profile=profile,
            role_arn=role_arn,
            external_id=external_id,
            role_session_name=role_session_name,
            sts_endpoint_url=endpoint_url,
        )

        def client(read_timeout: float, attempts: int, service: str = "sqs"):
            config = Config(
                connect_timeout=HEALTH_TIMEOUT,
                read_timeout=read_timeout,
                retries={"total_max_attempts": attempts, "mode": "standard"},
            )
            return session.client(service, endpoint_url=endpoint_url, config=config)

        # boto3 clients are thread-safe. Reads long-poll for up to 20 s, so the working client waits longer than
        # that; the health check has its own client that gives up within HEALTH_TIMEOUT.
        self._client = client(read_timeout=30, attempts=3)
        self._health_client = client(read_timeout=HEALTH_TIMEOUT, attempts=1)
        # Batches of more than 10 go as concurrent calls of 10 from a small pool, each thread with its own client
        # (clients are thread-safe, the session that makes them is not: creation holds _urls_lock).
        self._new_client = lambda: client(read_timeout=30, attempts=3)
        self._local = threading.local()
        self._pool: ThreadPoolExecutor | None = None
        self._urls: dict[str, str] = {}
        self._urls_lock = threading.Lock()
        # SNS in the same account and region: destinations "sns:<topic>" and "sns:<topic>/<subscription>".
        self._sns_client = client(read_timeout=30, attempts=3, service="sns")
        self._sns = sns.Topics(lambda operation, **params: self._call(operation, self._sns_client, **params))

    def __repr__(self) -> str:
        who = f" role={self.role_arn}" if self.role_arn else f" profile={self.profile}" if self.profile else ""
        return f"<SqsAdapter {self.endpoint_url or 'AWS'} {self.region}{who}>"

    def _call(self, operation: str, client=None, **params: Any) -> dict:
        try:
            return getattr(client or self._client, operation)(**params)
        except EndpointConnectionError as exc:
            raise BrokerUnavailable(str(exc)) from exc
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            # SNS answers NotFound for a topic or subscription that does not exist.
            if "NonExistentQueue" in code or "QueueDoesNotExist" in code or code in ("NotFound", "NotFoundException"):
                raise DestinationNotFound(str(exc)) from exc
            raise BrokerError(str(exc)) from exc
        except BotoCoreError as exc:
            raise BrokerUnavailable(str(exc)) from exc

    def _queue_url(self, name: str) -> str:
        url = self._urls.get(name)
        if url is None:
            url = self._call("get_queue_url", QueueName=name)["QueueUrl"]
            with self._urls_lock:
                self._urls[name] = url
        return url

    def _queue_urls(self, client=None) -> list[str]:
        urls, token = [], None
        while True:
            page = self._call("list_queues", client, MaxResults=1000, **({"NextToken": token} if token else {}))
            urls += page.get("QueueUrls", [])
            token = page.get("NextToken")
            if not token:
                return urls

    def _probe(self) -> tuple[str | None, int | None]:
        version = f"AWS SQS API at {self.endpoint_url}" if self.endpoint_url else f"AWS SQS API in {self.region}"
        try:
            return version, len(self._queue_urls(self._health_client))
        except BrokerError as exc:
            raise type(exc)(self.redact(str(exc)), reason=_aws_reason(exc)) from exc

    def list_destinations(self) -> list[Destination]:
        return sorted(
            (Destination(url.rsplit("/", 1)[-1], "queue") for url in self._queue_urls()), key=lambda d: d.name
        )

    def ensure_destination(self, name: str, attributes: Mapping[str, str] | None = None, **options: Any) -> None:
        """Create the queue (or, for "sns:<topic>", the topic); a name ending in .fifo makes a FIFO queue (topic).
        CreateQueue and CreateTopic are themselves idempotent."""
        target = sns.split(name)
        if target is not None:
            self._sns.ensure_topic(target[0], dict(attributes or {}))
            return
        attrs = {"FifoQueue": "true"} if name.endswith(".fifo") else {}
        attrs.update(attributes or {})
        url = self._call("create_queue", QueueName=name, Attributes=attrs)["QueueUrl"]
        with self._urls_lock:
            self._urls[name] = url

    def delete_destination(self, name: str) -> None:
        target = sns.split(name)
        if target is not None:
            self._sns.delete_topic(target[0])
            return
        try:
            self._call("delete_queue", QueueUrl=self._queue_url(name))
        except DestinationNotFound:
            pass
        with self._urls_lock:
            self._urls.pop(name, None)

    def publish_batch(self, messages: Iterable[OutgoingMessage]) -> list[PublishResult]:
        messages = list(messages)
        results: list[PublishResult | None] = [None] * len(messages)
        failures: dict[int, str] = {}
        by_queue: dict[str, list[tuple[int, dict]]] = {}
        for index, message in enumerate(messages):
            try:
                by_queue.setdefault(message.destination, []).append((index, _entry(index, message)))
            except ValueError as exc:
                failures[index] = str(exc)

        for queue, entries in by_queue.items():
            try:
                send, chunk_entries = self._sender(queue, [entry for _, entry in entries])
            except BrokerError as exc:
                failures.update((index, str(exc)) for index, _ in entries)
                continue
            # SendMessageBatch and PublishBatch take at most 10 entries; queue chunks go concurrently.
            chunks = [chunk_entries[start : start + 10] for start in range(0, len(chunk_entries), 10)]
            for chunk, response in zip(chunks, send(chunks), strict=True):
                if isinstance(response, BrokerError):
                    failures.update((int(entry["Id"]), str(response)) for entry in chunk)
                    continue
                for ok in response.get("Successful", []):
                    results[int(ok["Id"])] = PublishResult(queue, ok["MessageId"])
                for failed in response.get("Failed", []):
                    failures[int(failed["Id"])] = f"{failed.get('Code')}: {failed.get('Message')}"

        if failures or None in results:
            unconfirmed = [
                (message, failures.get(index, "no confirmation"))
                for index, message in enumerate(messages)
                if results[index] is None
            ]
            raise PublishError("SQS did not accept every message", unconfirmed, [r for r in results if r])
        return results  # type: ignore[return-value]

    def _sender(self, destination: str, entries: list[dict]):
        """(send(chunks) -> one response or BrokerError per chunk, the entries as that call takes them) for a queue,
        a topic ("sns:<topic>": every subscriber) or a subscription ("sns:<topic>/<id>": its endpoint only)."""
        target = sns.split(destination)
        if target is not None and target[1] is None:
            topic = target[0]
            # Chunks of ten, as publish() sends them: one response (or error) per chunk.
            publish = lambda chunks: self._sns.publish(topic, [e for chunk in chunks for e in chunk])  # noqa: E731
            return publish, [sns.topic_entry(e) for e in entries]
        queue = destination
        if target is not None:
            subscription = self._sns.subscription(*target)
            if subscription.protocol != "sqs":
                raise BrokerError(
                    f"{destination}: delivering to a {subscription.protocol or 'unknown'} subscription's endpoint is "
                    "not supported (only SQS endpoints); republish to the topic or choose another destination"
                )
            queue = sns.arn_name(subscription.endpoint)
            entries = [sns.endpoint_entry(e, subscription.raw) for e in entries]
        url = self._queue_url(queue)
        send = lambda c, chunk: c.send_message_batch(QueueUrl=url, Entries=chunk)  # noqa: E731
        return (lambda chunks: self._concurrently(send, chunks)), entries

    def topics(self) -> list[str]:
        """The names of the SNS topics of this account and region."""
        return self._sns.topics()

    def topic_subscriptions(self, topic: str | None = None) -> list[TopicSubscription]:
        """Every confirmed SNS subscription (of `topic`), each with its endpoint and dead-letter queue."""
        return self._sns.subscriptions(topic)

    def add_subscription(
        self, topic: str, protocol: str, endpoint: str, attributes: Mapping[str, str] | None = None
    ) -> TopicSubscription:
        return self._sns.add_subscription(topic, protocol, endpoint, dict(attributes or {}))

    def topic_destination(self, topic: str) -> str:
        """The destination of topic `topic` (a name topics() gives): publishing there reaches every subscriber."""
        return sns.topic_destination(topic)

    def fans_out(self, destination: str) -> bool:
        """Whether a message sent to `destination` goes to every subscriber of a topic."""
        target = sns.split(destination)
        return target is not None and target[1] is None

    def topic_of(self, destination: str) -> str | None:
        """The topic destination of a topic or subscription destination ("sns:orders/<id>" -> "sns:orders")."""
        target = sns.split(destination)
        return sns.topic_destination(target[0]) if target is not None else None

    def read(self, destination: str, max_messages: int = 10, timeout: float = 5.0) -> list[Message]:
        """Receive without consuming: nothing is deleted.

        Up to 10 messages are received with VisibilityTimeout=0, so they stay visible to consumers. SQS (and moto)
        then keep returning the same first messages, so a larger read hides each batch for BROWSE_HIDE_SECONDS and
        makes them all visible again at the end. Every receive raises ApproximateReceiveCount, which counts towards a
        redrive policy's maxReceiveCount.
        """
        url = self._queue_url(destination)
        hide = max_messages > 10
        found: dict[str, Message] = {}
        deadline = time.monotonic() + timeout
        try:
            while len(found) < max_messages:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                response = self._call(
                    "receive_message",
                    QueueUrl=url,
                    MaxNumberOfMessages=min(10, max_messages - len(found)),
                    VisibilityTimeout=BROWSE_HIDE_SECONDS if hide else 0,
                    # Long-poll for the first messages; after that a short wait tells "all seen" from "slow".
                    WaitTimeSeconds=min(20 if not found else 1, max(0, math.floor(remaining))),
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                )
                new = [m for m in response.get("Messages", []) if m["MessageId"] not in found]
                if not new:
                    break
                for raw in new:
                    found[raw["MessageId"]] = _to_message(destination, raw)
        finally:
            if hide and found:
                self._make_visible(url, [m.ack_token for m in found.values()])
        return list(found.values())[:max_messages]

    def _make_visible(self, url: str, receipt_handles: list[str]) -> None:
        for start in range(0, len(receipt_handles), 10):
            entries = [
                {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                for i, handle in enumerate(receipt_handles[start : start + 10])
            ]
            self._call("change_message_visibility_batch", QueueUrl=url, Entries=entries)

    def close(self) -> None:
        self._client.close()
        self._health_client.close()
        self._sns_client.close()

    def subscribe(self, destination: str, group: str, **options: Any) -> SqsSubscription:
        """Receive from queue `destination`; ack() deletes. SQS has no groups: every subscriber shares the queue.

        options: `visibility_timeout` (seconds a received message stays hidden before it is redelivered, default
        30) — an unacked message from a killed consumer comes back after it.
        """
        hidden = options.get("visibility_timeout", options.get("redeliver_after", 30))
        return SqsSubscription(self, destination, int(hidden))

    def pending_age(self, destination: str, group: str) -> PendingAge:
        """SQS has no age of the oldest message (ApproximateAgeOfOldestMessage is a CloudWatch metric, not a queue
        attribute): one message is peeked for its SentTimestamp. A standard queue returns some message, not
        necessarily the oldest, so this is a lower bound; with every message in flight there is none to peek."""
        attributes = self.queue_attributes(destination)
        period = attributes.get("MessageRetentionPeriod")
        retention = int(period) if period else None
        waiting = int(attributes.get("ApproximateNumberOfMessages", 0))
        in_flight = int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0))
        if not waiting and not in_flight:
            return PendingAge(retention)
        peeked = [m.timestamp for m in self.read(destination, 1, timeout=1) if m.timestamp]
        return PendingAge(retention, min(peeked)) if peeked else PendingAge(retention, hidden=True)

    def queue_attributes(self, name: str) -> dict[str, str]:
        """All attributes of queue `name` (RedrivePolicy, MessageRetentionPeriod, ApproximateNumberOfMessages, ...)."""
        return self._call("get_queue_attributes", QueueUrl=self._queue_url(name), AttributeNames=["All"]).get(
            "Attributes", {}
        )

    def dead_letter_source_queues(self, name: str) -> list[str]:
        """Names of the queues whose RedrivePolicy sends their failures to queue `name`."""
        urls = self._call("list_dead_letter_source_queues", QueueUrl=self._queue_url(name)).get("queueUrls", [])
        return sorted(url.rsplit("/", 1)[-1] for url in urls)

    def _thread_client(self):
        client = getattr(self._local, "client", None)
        if client is None:
            with self._urls_lock:
                client = self._local.client = self._new_client()
        return client

    def _concurrently(self, call, items: list) -> list:
        """call(client, item) for each item, SQS_WORKERS at a time; each result is the response or the BrokerError."""

        def one(item):
            try:
                return self._call("__call__", _Bound(call, self._thread_client(), item))
            except BrokerError as exc:
                return exc

        if len(items) <= 1:
            return [one(item) for item in items]
        if self._pool is None:
            with self._urls_lock:
                self._pool = self._pool or ThreadPoolExecutor(SQS_WORKERS, thread_name_prefix="sqs")
        return list(self._pool.map(one, items))

    def queue_depth(self, name: str) -> QueueDepth:
        """Visible, in flight and delayed counts (SQS's approximate attributes).

        SQS keeps no "oldest message" attribute for standard queues (CloudWatch's ApproximateAgeOfOldestMessage is
        not in the API), so the age is unknown here: None rather than a guess.
        """
        a = self._call(
            "get_queue_attributes",
            QueueUrl=self._queue_url(name),
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        ).get("Attributes", {})
        return QueueDepth(
            name,
            ready=int(a.get("ApproximateNumberOfMessages", 0)),
            in_flight=int(a.get("ApproximateNumberOfMessagesNotVisible", 0)),
            delayed=int(a.get("ApproximateNumberOfMessagesDelayed", 0)),
        )


# Error codes of AWS (and of STS while assuming a role) that mean the credentials were refused.
_AUTH_CODES = {
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
    "AccessDenied",
    "AccessDeniedException",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidAccessKeyId",
    "AuthFailure",
    "NoCredentialsError",
}


def _aws_reason(exc: BaseException) -> str:
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            break
        if isinstance(seen, ClientError) and seen.response.get("Error", {}).get("Code") in _AUTH_CODES:
            return AUTH_REFUSED
        if isinstance(seen, NoCredentialsError | PartialCredentialsError):
            return AUTH_REFUSED
        seen = seen.__cause__ or seen.__context__
    return reason_for(exc)


def _attribute(value: bytes) -> dict:
    try:
        text = value.decode()
    except UnicodeDecodeError:
        return {"DataType": "Binary", "BinaryValue": value}
    if not _SQS_TEXT.match(text):
        return {"DataType": "Binary", "BinaryValue": value}
    return {"DataType": "String", "StringValue": text}


def _entry(index: int, message: OutgoingMessage) -> dict:
    """One SendMessageBatch entry; ValueError if SQS could not carry the message."""
    attributes = {
        name: _attribute(v.encode() if isinstance(v, str) else v) for name, v in (message.headers or {}).items()
    }
    body = message.body
    try:
        text = body.decode()
        if not _SQS_TEXT.match(text):
            raise UnicodeDecodeError("utf-8", body, 0, 1, "character SQS does not allow")
    except UnicodeDecodeError:
        text = base64.b64encode(body).decode()
        attributes[BODY_ENCODING_ATTRIBUTE] = _attribute(b"base64")
    entry: dict[str, Any] = {"Id": str(index), "MessageBody": text}
    key = key_bytes(message.key)
    if sns.is_fifo(message.destination):
        # FIFO queues order and deduplicate per group: the key is the group (messages without a key share the group
        # "default", which reads back as their key); an explicit event id deduplicates retries of the same event
        # within SQS's five-minute window.
        entry["MessageGroupId"] = key.decode() if key is not None else "default"
        entry["MessageDeduplicationId"] = _deduplication_id(message.headers or {})
    elif key is not None:
        attributes[KEY_ATTRIBUTE] = _attribute(key)
    if len(attributes) > MAX_ATTRIBUTES:
        raise ValueError(
            f"SQS allows at most {MAX_ATTRIBUTES} message attributes; this message needs {len(attributes)} "
            f"({', '.join(sorted(attributes))})"
        )
    if attributes:
        entry["MessageAttributes"] = attributes
    return entry


# A replay is a new delivery of the event on purpose: SQS would drop it as a duplicate of the original within its
# five-minute window if it kept the event id alone. Its operation and replay count make it unique, and the same for a
# batch a resumed replay sends again (which SQS then does drop).
_REPLAY_HEADERS = ("x-switchyard-operation", "x-switchyard-replay-count")
_DEDUPLICATION_ID = re.compile(r"[!-~]{1,128}")  # alphanumerics and punctuation, at most 128


def _deduplication_id(headers: Mapping[str, str | bytes]) -> str:
    def text(value) -> str:
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")

    base = text(headers.get("x-event-id")) or uuid.uuid4().hex
    replay = [text(headers.get(name)) for name in _REPLAY_HEADERS]
    value = ":".join([base, "replay", *replay]) if all(replay) else base
    if not _DEDUPLICATION_ID.fullmatch(value):  # what SQS takes; anything else as its digest
        return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return value


def _to_message(queue: str, raw: dict) -> Message:
    """A received message as a Message. Never raises: what could not be read is named in parse_error."""
    problems: list[str] = []
    attributes = {name: _attribute_bytes(value) for name, value in (raw.get("MessageAttributes") or {}).items()}
    text = raw.get("Body") or ""
    # SQS bodies are XML text, so a str always; surrogatepass for a str that is not (it encodes every str).
    body = text.encode("utf-8", "surrogatepass")
    encoding = attributes.pop(BODY_ENCODING_ATTRIBUTE, None)
    if encoding == b"base64":
        try:
            body = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            # Another publisher's attribute of the same name, or a mangled body: kept as the text that came.
            attributes[BODY_ENCODING_ATTRIBUTE] = encoding
            problems.append(f"{BODY_ENCODING_ATTRIBUTE} says base64 but the body is not ({exc}); stored as sent")
    elif encoding is not None:
        attributes[BODY_ENCODING_ATTRIBUTE] = encoding
    system = raw.get("Attributes") or {}
    key = attributes.pop(KEY_ATTRIBUTE, None)
    if "MessageGroupId" in system:
        key = str(system["MessageGroupId"]).encode()
    return Message(
        destination=queue,
        body=body,
        key=key,
        headers=attributes,
        message_id=raw.get("MessageId"),
        timestamp=epoch_datetime(sent / 1000) if (sent := _number(system.get("SentTimestamp"))) is not None else None,
        delivery_count=_number(system.get("ApproximateReceiveCount")),
        ack_token=raw.get("ReceiptHandle"),
        parse_error="; ".join(problems) or None,
    )


def _attribute_bytes(value: dict) -> bytes:
    """A message attribute's value: Binary (and Binary.* custom types) as its bytes, String and Number as UTF-8."""
    if "BinaryValue" in value:
        return bytes(value["BinaryValue"] or b"")
    return str(value.get("StringValue") or "").encode("utf-8", "surrogatepass")


def _number(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


class _Bound:
    """call(client, item) as a zero-argument callable, so _call() maps its boto3 errors like any other."""

    def __init__(self, call, client, item):
        self.call, self.client, self.item = call, client, item

    def __call__(self):
        return self.call(self.client, self.item)


class SqsSubscription(Subscription):
    """Long-poll receive in rounds of up to 10; ack = DeleteMessageBatch, nack = make visible again at once."""

    def __init__(self, adapter: SqsAdapter, destination: str, visibility_timeout: int):
        self._adapter = adapter
        self.destination = destination
        self._url = adapter._queue_url(destination)
        self._visibility_timeout = visibility_timeout

    def poll(self, max_messages: int = 100, timeout: float = 1.0) -> list[Message]:
        found: list[Message] = []
        deadline = time.monotonic() + timeout
        while len(found) < max_messages:
            remaining = deadline - time.monotonic()
            # Wait for the first message; after that take only what is already there.
            wait = 0 if found else max(0, min(20, math.floor(remaining)))
            response = self._adapter._call(
                "receive_message",
                QueueUrl=self._url,
                MaxNumberOfMessages=min(10, max_messages - len(found)),
                VisibilityTimeout=self._visibility_timeout,
                WaitTimeSeconds=wait,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            raw = response.get("Messages", [])
            found += [_to_message(self.destination, m) for m in raw]
            if not raw and (found or time.monotonic() >= deadline):
                break
            if not raw:
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        return found

    def ack(self, messages) -> None:
        handles = [m.ack_token for m in messages]
        batches = [
            [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(handles[start : start + 10])]
            for start in range(0, len(handles), 10)
        ]
        delete = lambda c, entries: c.delete_message_batch(QueueUrl=self._url, Entries=entries)  # noqa: E731
        for response in self._adapter._concurrently(delete, batches):
            if isinstance(response, BrokerError):
                raise response
            if response.get("Failed"):
                raise BrokerError(f"SQS did not delete {len(response['Failed'])} message(s) of {self.destination!r}")

    def nack(self, messages) -> None:
        self._adapter._make_visible(self._url, [m.ack_token for m in messages])

    def close(self) -> None:
        pass
