"""The one small interface every broker adapter implements, and the types it speaks.

Adapters are plain Python (no Django): the console, Celery tasks and the outbox relay all hold one per broker and call
it from threads and forked workers, so each adapter creates its clients lazily and again after a fork (see `Lazy`).
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

# Every call that only asks a broker about itself gives up after this many seconds, so a dead broker turns the
# dashboard's health cell red instead of hanging the page.
HEALTH_TIMEOUT = 3.0


class BrokerError(Exception):
    """Something a broker refused or could not do. `reason`, when the adapter knows it, is one of the REASONS."""

    def __init__(self, *args: Any, reason: str | None = None):
        super().__init__(*args)
        self.reason = reason


class BrokerConfigError(ValueError):
    """A connection's settings cannot work (a missing key, an unreadable file, a contradiction); the message names
    the key. Raised when the adapter is constructed, before anything connects."""


# Why a broker could not be reached, in the words an operator acts on (Health.reason). Health.error keeps the detail.
AUTH_REFUSED = "authentication refused"
CERT_NOT_TRUSTED = "certificate not trusted"
CERT_REJECTED = "certificate rejected (client certificate)"
HOST_UNKNOWN = "host unknown"
CONNECTION_REFUSED = "connection refused"
TIMED_OUT = "timed out"
ERROR = "error"
REASONS = (AUTH_REFUSED, CERT_NOT_TRUSTED, CERT_REJECTED, HOST_UNKNOWN, CONNECTION_REFUSED, TIMED_OUT, ERROR)


class BrokerUnavailable(BrokerError):
    """The broker could not be reached (connection refused, timed out, dropped)."""


class DestinationNotFound(BrokerError):
    """The topic, queue or stream does not exist."""


class PublishError(BrokerError):
    """Some messages of a publish were not confirmed by the broker.

    `failures` pairs each unconfirmed message with the reason; `results` holds the confirmations of the others, so a
    caller such as the outbox relay can mark those as sent and retry only the failures.
    """

    def __init__(
        self, message: str, failures: Sequence[tuple[OutgoingMessage, str]] = (), results: Sequence[PublishResult] = ()
    ):
        self.failures = list(failures)
        self.results = list(results)
        if self.failures:
            shown = "; ".join(f"{m.destination}: {reason}" for m, reason in self.failures[:5])
            more = f" (and {len(self.failures) - 5} more)" if len(self.failures) > 5 else ""
            message = f"{message}: {shown}{more}"
        super().__init__(message)


@dataclass(frozen=True)
class Health:
    broker: str
    reachable: bool
    version: str | None
    latency_ms: float | None
    destinations: int | None
    error: str | None
    reason: str | None = None  # one of REASONS when reachable is False


@dataclass(frozen=True)
class Destination:
    name: str
    kind: str  # "topic" | "queue" | "stream" | "exchange"


@dataclass
class OutgoingMessage:
    destination: str
    body: bytes
    key: bytes | str | None = None
    headers: Mapping[str, str | bytes] | None = None


@dataclass
class PublishResult:
    destination: str
    message_id: str | None
    partition: int | None = None
    offset: int | None = None


class PendingPublish:
    """A batch handed to a broker client: `result()` returns its PublishResults in order or raises PublishError (as
    publish_batch would). This default is already settled; an adapter with asynchronous confirmations subclasses it."""

    def __init__(self, results: list[PublishResult] | None = None, error: BrokerError | None = None):
        self._results = results
        self._error = error

    def result(self) -> list[PublishResult]:
        if self._error is not None:
            raise self._error
        return self._results or []


@dataclass
class Message:
    """Something read from a broker. Headers are always bytes, whatever the broker stores."""

    destination: str
    body: bytes
    key: bytes | None
    headers: dict[str, bytes] = field(default_factory=dict)
    message_id: str | None = None
    partition: int | None = None
    offset: int | None = None
    timestamp: datetime | None = None  # tz-aware UTC
    delivery_count: int | None = None
    ack_token: Any = None  # e.g. SQS receipt handle, RabbitMQ delivery tag
    # What of the message the adapter could not read as the broker defines it (a header block that does not parse, a
    # body encoding that does not decode, ...). The message is still returned, with its bytes as they came, so a
    # consumer can store it and show the problem instead of failing on it; None when everything was understood.
    parse_error: str | None = None


class Capability(StrEnum):
    """What an adapter can do beyond the common interface. Apps ask `adapter.supports(...)` instead of branching on
    the broker's name, so a new adapter (or a broker that gains a feature) needs no change in the apps."""

    CONSUMER_GROUPS = "consumer_groups"  # consumer_groups(), committed / end offsets: lag per group and partition
    OFFSET_RESET = "offset_reset"  # reset_offsets() of a group
    # queue_depth(name) / queue_depths(names) of the queues list_destinations() names and of any the caller knows
    QUEUE_DEPTH = "queue_depth"
    STREAM_CONSUMERS = "stream_consumers"  # consumer_info(stream): JetStream consumers' pending counts
    REDRIVE_POLICY = "redrive_policy"  # queue_attributes(): each queue names its dead-letter queue (SQS)
    DEAD_LETTER_EXCHANGE = "dead_letter_exchange"  # queue_arguments() / bindings(): x-dead-letter-* (RabbitMQ)
    TOPIC_PATTERNS = "topic_patterns"  # dead-letter topics are found by name (Kafka: DLQ_KAFKA_PATTERNS)
    DELIVERY_ADVISORIES = "delivery_advisories"  # max-deliveries advisories name the message (NATS JetStream)
    UNIQUE_PUBLISH_ID = "unique_publish_id"  # the broker drops a publish whose message id it saw (JetStream)
    POSITIONS = "positions"  # messages have a partition and offset that identify them (Kafka)
    SEQUENCES = "sequences"  # messages have a stream sequence that identifies them (JetStream)
    # Messages of one key sent without waiting for each other arrive in order, and those behind a failed one fail too
    # (Kafka's idempotent producer, one key = one partition): the outbox relay sends a key's rows in one wave.
    KEY_ORDERED_PIPELINE = "key_ordered_pipeline"
    PENDING_AGE = "pending_age"  # pending_age(): a destination's retention and its oldest message a group has not read
    # Topics fan out to subscriptions, each with its own endpoint and dead-letter queue (SNS): topics(),
    # topic_subscriptions(), fans_out() / topic_of() of a destination; a subscription's destination delivers to its
    # endpoint only, a topic's to every subscriber.
    TOPIC_SUBSCRIPTIONS = "topic_subscriptions"


class BrokerAdapter(ABC):
    name: str  # the kind: "kafka" | "sqs" | "rabbitmq" | "nats"
    capabilities: frozenset[Capability] = frozenset()
    # The largest message body the broker takes by default (bytes); the outbox relay fails larger ones up front.
    max_message_bytes: int = 1_000_000
    # How many headers a caller may put on a message (None: no limit that matters); the adapter may need a few of
    # the broker's own slots beyond these for the key and a binary body's encoding.
    max_headers: int | None = None
    # The passwords, tokens and keys this adapter was given: redact() blanks them out of any text it shows.
    _secrets: tuple[str, ...] = ()

    def supports(self, capability: Capability) -> bool:
        return capability in self.capabilities

    def health(self) -> Health:
        """Never raises: an unreachable broker gives reachable=False, the reason in words and the error text."""
        started = time.perf_counter()
        try:
            version, destinations = self._probe()
        except Exception as exc:  # noqa: BLE001 - health reports every failure instead of raising it
            return Health(self.name, False, None, None, None, self.redact(_describe(exc)), reason_for(exc))
        latency_ms = round((time.perf_counter() - started) * 1000, 2)
        return Health(self.name, True, version, latency_ms, destinations, None)

    def redact(self, text: str) -> str:
        return redact(text, self._secrets)

    @abstractmethod
    def _probe(self) -> tuple[str | None, int | None]:
        """One cheap metadata round trip (≤ HEALTH_TIMEOUT); returns (version, number of destinations)."""

    @abstractmethod
    def list_destinations(self) -> list[Destination]: ...

    @abstractmethod
    def ensure_destination(self, name: str, **options: Any) -> None:
        """Create the destination if it is missing; calling it again is harmless."""

    @abstractmethod
    def delete_destination(self, name: str) -> None:
        """Delete the destination; a missing one is not an error (used by test cleanup)."""

    def publish(
        self,
        destination: str,
        body: bytes,
        key: bytes | str | None = None,
        headers: Mapping[str, str | bytes] | None = None,
    ) -> PublishResult:
        """Publish one message and wait until the broker confirms it."""
        return self.publish_batch([OutgoingMessage(destination, body, key, headers)])[0]

    @abstractmethod
    def publish_batch(self, messages: Iterable[OutgoingMessage]) -> list[PublishResult]:
        """Send all messages without waiting between them, then wait for every confirmation.

        Returns the results in the order of `messages`; raises PublishError if any was not confirmed.
        """

    def start_batch(self, messages: Iterable[OutgoingMessage]) -> PendingPublish:
        """Hand `messages` to the broker client and return without waiting for confirmations; `.result()` waits.

        A caller that pipelines (the dead-letter replay) sends batch n+1 while batch n is being confirmed. Brokers whose
        client confirms synchronously publish here, so `.result()` only reports what already happened."""
        try:
            return PendingPublish(results=self.publish_batch(messages))
        except BrokerError as exc:
            return PendingPublish(error=exc)

    @abstractmethod
    def read(self, destination: str, max_messages: int = 10, timeout: float = 5.0) -> list[Message]:
        """Read messages without consuming them (for browsing and tests)."""

    def subscribe(self, destination: str, group: str, **options: Any) -> Subscription:
        """Consume `destination` as consumer group `group`, acknowledging only what the caller acks.

        One option every adapter understands: `redeliver_after` (seconds), how long a message taken but not acked
        stays away from other readers (SQS's visibility timeout, JetStream's ack wait). Brokers that hand a dead
        reader's messages on only when its session ends (Kafka, RabbitMQ) need no such figure and ignore it. And
        `exclusive=True`: the caller guarantees it is the destination's only reader (it holds a lease), which lets a
        broker with consumer groups read every partition without joining the group; others ignore it. Other
        options are the adapter's own. Adapters that cannot consume yet say so; the caller shows the error instead of
        guessing.
        """
        raise BrokerError(f"the {self.name} adapter does not support subscribe()")

    def pending_age(self, destination: str, group: str) -> PendingAge:
        """How long the broker keeps messages of `destination`, and when the oldest one `group` has not consumed
        arrived: what the dead-letter retention warning needs (Capability.PENDING_AGE)."""
        raise BrokerError(f"the {self.name} adapter cannot tell the age of pending messages")

    def queue_depths(self, names: Iterable[str]) -> dict[str, QueueDepth]:
        """QUEUE_DEPTH adapters: each named queue's depth; a queue that does not exist is left out."""
        found = {}
        for name in dict.fromkeys(names):
            try:
                found[name] = self.queue_depth(name)
            except DestinationNotFound:
                continue
        return found

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


class Subscription(ABC):
    """A consumer for at-least-once processing: poll, write what was read to the database, commit, then ack.

    Nothing is acknowledged on its own (no auto-commit): a consumer killed between poll and ack gets the same
    messages again, so whoever processes them must be idempotent.
    """

    @abstractmethod
    def poll(self, max_messages: int = 100, timeout: float = 1.0) -> list[Message]:
        """Up to max_messages, waiting at most `timeout` seconds for the first."""

    @abstractmethod
    def ack(self, messages: Sequence[Message]) -> None:
        """Acknowledge (commit offsets / delete / ack) — call only after the database commit that recorded them."""

    def nack(self, messages: Sequence[Message]) -> None:  # noqa: B027 - optional: a no-op is a valid default
        """Give messages back for redelivery. Default: do nothing, so they come back after the broker's timeout."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


T = TypeVar("T")


class Lazy(Generic[T]):
    """A client created on first use, and created again in a forked child.

    Celery's prefork pool forks after the parent may already have used an adapter. A child must not use, nor close,
    the parent's sockets or threads (closing would send a goodbye on a socket the parent still uses), so the child
    just forgets the inherited client and makes its own.
    """

    def __init__(self, factory: Callable[[], T], closer: Callable[[T], None] | None = None):
        self._factory = factory
        self._closer = closer
        self._value: T | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def get(self) -> T:
        if self._value is None or self._pid != os.getpid():
            with self._lock:
                if self._value is None or self._pid != os.getpid():
                    self._value = self._factory()
                    self._pid = os.getpid()
        return self._value

    def peek(self) -> T | None:
        """The client this process already made, if any, without making one."""
        return self._value if self._pid == os.getpid() else None

    def reset(self) -> None:
        """Close (if this process made it) and forget the client; the next get() makes a new one."""
        value, self._value = self._value, None
        if value is not None and self._pid == os.getpid() and self._closer is not None:
            try:
                self._closer(value)
            except Exception:  # noqa: BLE001 - a client that fails to close is gone all the same
                pass


def _describe(exc: BaseException) -> str:
    text = str(exc) or repr(exc)
    return f"{type(exc).__name__}: {text}"


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret replaced by "***" (longest first, so a secret containing another goes whole)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def secrets_of(*values: Any) -> tuple[str, ...]:
    """The non-empty strings among `values`, and their URL-encoded forms (a password inside a URL is encoded)."""
    import urllib.parse

    found: list[str] = []
    for value in values:
        if isinstance(value, bytes):
            value = value.decode(errors="replace")
        if isinstance(value, str) and value:
            found += [value, urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value)]
    return tuple(dict.fromkeys(found))


class RedactingLogger:
    """Stands in for a logging.Logger where a client library logs through an object we hand it (librdkafka): every
    line goes to `logger` with the adapter's secrets blanked out."""

    def __init__(self, logger: logging.Logger, secrets: Iterable[str]):
        self._logger = logger
        self._secrets = tuple(secrets)

    def log(self, level: int, msg: str, *args: Any, **kwargs: Any) -> None:
        if self._logger.isEnabledFor(level):
            text = msg % args if args else msg
            self._logger.log(level, "%s", redact(text, self._secrets), **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._logger, name)


# Words in client error texts, lowercased, that tell the reason when no exception type does (librdkafka and
# nats-py report most failures as text only). Checked in this order: a TLS failure often also says "connection".
_REASON_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (CERT_REJECTED, ("alert certificate required", "alert bad certificate", "peer did not return a certificate",
                     "certificate required", "alert unknown ca", "sslv3 alert bad certificate")),
    (CERT_NOT_TRUSTED, ("certificate verify failed", "unable to get local issuer", "self-signed certificate",
                        "self signed certificate", "certificate has expired", "hostname mismatch",
                        "ip address mismatch", "broker certificate could not be verified")),
    (AUTH_REFUSED, ("authentication failed", "authentication error", "authorization violation", "access_refused",
                    "access refused", "login was refused", "invalid credentials", "unknown-user", "invalid-proof",
                    "bad user name or password", "sasl authentication", "authorization failed", "not authorized",
                    "invalidclienttokenid", "signaturedoesnotmatch", "unrecognizedclient", "expiredtoken",
                    "accessdenied", "invalid security token", "user authentication expired", "auth expired")),
    (HOST_UNKNOWN, ("name or service not known", "nodename nor servname", "failed to resolve", "temporary failure in "
                    "name resolution", "no address associated", "could not resolve", "getaddrinfo failed")),
    (CONNECTION_REFUSED, ("connection refused", "econnrefused", "does not accept connections")),
    (TIMED_OUT, ("timed out", "timeout", "did not answer within")),
)  # fmt: skip


def reason_for(exc: BaseException) -> str:
    """One of REASONS for `exc`: from the reason an adapter attached, the exception types in its chain, or the
    words of its text, in that order."""
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in chain and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    for e in chain:
        if getattr(e, "reason", None) in REASONS:
            return e.reason  # type: ignore[union-attr]
    for e in chain:
        if isinstance(e, ssl.SSLCertVerificationError):
            return CERT_NOT_TRUSTED
        if isinstance(e, ssl.SSLError) and "CERTIFICATE" in (e.reason or "").upper():
            # TLSV13_ALERT_CERTIFICATE_REQUIRED, SSLV3_ALERT_BAD_CERTIFICATE: the server refused ours
            return CERT_REJECTED
        if isinstance(e, socket.gaierror):
            return HOST_UNKNOWN
        if isinstance(e, ConnectionRefusedError):
            return CONNECTION_REFUSED
        if isinstance(e, TimeoutError | socket.timeout):
            return TIMED_OUT
    text = " ".join(str(e) for e in chain).lower()
    for reason, words in _REASON_WORDS:
        if any(word in text for word in words):
            return reason
    return ERROR


def header_bytes(value: str | bytes | None) -> bytes:
    if value is None:
        return b""
    return value.encode() if isinstance(value, str) else bytes(value)


def epoch_datetime(seconds: float | int | None) -> datetime | None:
    """A tz-aware UTC datetime from seconds since the epoch, or None when there is none or it lies outside what a
    datetime can hold: timestamps are set by publishers (Kafka's CreateTime, AMQP's timestamp property), and a
    publisher's nonsense must not stop its message from being read."""
    if seconds is None or isinstance(seconds, bool):
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError, TypeError):
        return None


def key_bytes(key: bytes | str | None) -> bytes | None:
    if key is None:
        return None
    return key.encode() if isinstance(key, str) else bytes(key)


def check_tcp(addresses: Iterable[str], what: str) -> None:
    """Raise BrokerUnavailable unless one "host:port" accepts a TCP connection.

    Client libraries keep retrying a refused connection until their timeout and then give a vague error; this gives
    the health check a quick, clear answer for the common "the broker is down" case.
    """
    errors, reasons = [], set()
    for address in addresses:
        host, _, port = address.strip().rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=HEALTH_TIMEOUT).close()
            return
        except (OSError, ValueError) as exc:
            errors.append(f"{address.strip()}: {exc}")
            reasons.add(reason_for(exc) if isinstance(exc, OSError) else ERROR)
    # One reason when every address failed the same way; "error" when they differ.
    reason = reasons.pop() if len(reasons) == 1 else ERROR
    raise BrokerUnavailable(f"{what} does not accept connections (" + "; ".join(errors) + ")", reason=reason)


# --- monitoring (issue #6): what the consumer-lag and queue-depth methods return ---


@dataclass(frozen=True)
class PendingAge:
    """A destination's retention in seconds (None: kept forever, or the broker does not say) and the arrival of the
    oldest message a group has not consumed (None: nothing pending). `hidden`: messages wait, but none could be looked
    at (all taken by a reader, or a look would cost a delivery), so the caller stands in its own last-read time."""

    retention: int | None
    oldest: datetime | None = None
    hidden: bool = False


@dataclass(frozen=True)
class ConsumerGroup:
    """A Kafka consumer group as the broker describes it (tansu: state "UNKNOWN" and no members, see kafka.py)."""

    name: str
    state: str
    members: int
    simple: bool = False


@dataclass(frozen=True)
class PartitionOffsets:
    """Committed and end (high-watermark) offsets of one partition for one group; committed None = never committed."""

    topic: str
    partition: int
    committed: int | None
    end: int

    @property
    def lag(self) -> int:
        # A group that never committed has consumed nothing it can prove; count the whole partition as lag.
        return max(0, self.end - (self.committed if self.committed is not None and self.committed >= 0 else 0))


@dataclass(frozen=True)
class OffsetChange:
    topic: str
    partition: int
    old: int | None
    new: int


@dataclass(frozen=True)
class QueueDepth:
    """A queue's backlog. None = this broker cannot tell (e.g. delayed messages on RabbitMQ)."""

    name: str
    ready: int
    in_flight: int | None = None
    delayed: int | None = None
    consumers: int | None = None
    oldest_age_seconds: float | None = None
    publish_rate: float | None = None
    deliver_rate: float | None = None


@dataclass(frozen=True)
class TopicSubscription:
    """One subscription of a topic (SNS) as the adapter names it. `destination` delivers to this subscription's
    endpoint only; `dead_letter_queue` is the queue its redrive policy names (None: failed deliveries are dropped)."""

    topic: str
    subscription: str  # its id: the last part of its ARN
    arn: str
    protocol: str  # sqs, lambda, https, email, ...
    endpoint: str  # a queue's or function's ARN, a URL, an address
    raw: bool  # raw message delivery: the message as published, attributes as the endpoint's own
    dead_letter_queue: str | None
    destination: str


@dataclass(frozen=True)
class JetStreamConsumer:
    stream: str
    name: str
    pending: int
    ack_pending: int
    redelivered: int
    waiting: int
