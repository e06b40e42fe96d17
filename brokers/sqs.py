"""Amazon SQS through boto3 (moto_server stands in for it in tests and `make run`)."""

from __future__ import annotations

import base64
import math
import re
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from brokers.base import (
    HEALTH_TIMEOUT,
    BrokerAdapter,
    BrokerError,
    BrokerUnavailable,
    Destination,
    DestinationNotFound,
    Message,
    OutgoingMessage,
    PublishError,
    PublishResult,
    key_bytes,
)

MAX_ATTRIBUTES = 10  # SQS rejects a message with more message attributes
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

    def __init__(self, endpoint_url: str | None, region: str, access_key_id: str | None, secret_access_key: str | None):
        self.endpoint_url = endpoint_url
        session = boto3.session.Session(
            aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key, region_name=region
        )

        def client(read_timeout: float, attempts: int):
            config = Config(
                connect_timeout=HEALTH_TIMEOUT,
                read_timeout=read_timeout,
                retries={"total_max_attempts": attempts, "mode": "standard"},
            )
            return session.client("sqs", endpoint_url=endpoint_url, config=config)

        # boto3 clients are thread-safe. Reads long-poll for up to 20 s, so the working client waits longer than
        # that; the health check has its own client that gives up within HEALTH_TIMEOUT.
        self._client = client(read_timeout=30, attempts=3)
        self._health_client = client(read_timeout=HEALTH_TIMEOUT, attempts=1)
        self._urls: dict[str, str] = {}
        self._urls_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<SqsAdapter {self.endpoint_url or 'AWS'}>"

    def _call(self, operation: str, client=None, **params: Any) -> dict:
        try:
            return getattr(client or self._client, operation)(**params)
        except EndpointConnectionError as exc:
            raise BrokerUnavailable(str(exc)) from exc
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if "NonExistentQueue" in code or "QueueDoesNotExist" in code:
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
        version = f"AWS SQS API at {self.endpoint_url}" if self.endpoint_url else "AWS SQS API"
        return version, len(self._queue_urls(self._health_client))

    def list_destinations(self) -> list[Destination]:
        return sorted(
            (Destination(url.rsplit("/", 1)[-1], "queue") for url in self._queue_urls()), key=lambda d: d.name
        )

    def ensure_destination(self, name: str, attributes: Mapping[str, str] | None = None, **options: Any) -> None:
        """Create the queue; a name ending in .fifo makes a FIFO queue. CreateQueue is itself idempotent."""
        attrs = {"FifoQueue": "true"} if name.endswith(".fifo") else {}
        attrs.update(attributes or {})
        url = self._call("create_queue", QueueName=name, Attributes=attrs)["QueueUrl"]
        with self._urls_lock:
            self._urls[name] = url

    def delete_destination(self, name: str) -> None:
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
                url = self._queue_url(queue)
            except BrokerError as exc:
                failures.update((index, str(exc)) for index, _ in entries)
                continue
            for start in range(0, len(entries), 10):  # SendMessageBatch takes at most 10 entries
                chunk = [entry for _, entry in entries[start : start + 10]]
                try:
                    response = self._call("send_message_batch", QueueUrl=url, Entries=chunk)
                except BrokerError as exc:
                    failures.update((int(entry["Id"]), str(exc)) for entry in chunk)
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
    if message.destination.endswith(".fifo"):
        # FIFO queues order and deduplicate per group: the key is the group (messages without a key share the group
        # "default", which reads back as their key); an explicit event id deduplicates retries of the same event
        # within SQS's five-minute window.
        entry["MessageGroupId"] = key.decode() if key is not None else "default"
        event_id = (message.headers or {}).get("x-event-id")
        entry["MessageDeduplicationId"] = (
            event_id.decode() if isinstance(event_id, bytes) else event_id or uuid.uuid4().hex
        )
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


def _to_message(queue: str, raw: dict) -> Message:
    attributes = {
        name: value["BinaryValue"] if "BinaryValue" in value else value.get("StringValue", "").encode()
        for name, value in raw.get("MessageAttributes", {}).items()
    }
    body = raw["Body"].encode()
    if attributes.pop(BODY_ENCODING_ATTRIBUTE, None) == b"base64":
        body = base64.b64decode(body)
    system = raw.get("Attributes", {})
    key = attributes.pop(KEY_ATTRIBUTE, None)
    if "MessageGroupId" in system:
        key = system["MessageGroupId"].encode()
    sent = system.get("SentTimestamp")
    return Message(
        destination=queue,
        body=body,
        key=key,
        headers=attributes,
        message_id=raw["MessageId"],
        timestamp=datetime.fromtimestamp(int(sent) / 1000, UTC) if sent else None,
        delivery_count=int(system["ApproximateReceiveCount"]) if "ApproximateReceiveCount" in system else None,
        ack_token=raw["ReceiptHandle"],
    )
