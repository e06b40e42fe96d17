"""The one small interface every broker adapter implements, and the types it speaks.

Adapters are plain Python (no Django): the console, Celery tasks and the outbox relay all hold one per broker and call
it from threads and forked workers, so each adapter creates its clients lazily and again after a fork (see `Lazy`).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

# Every call that only asks a broker about itself gives up after this many seconds, so a dead broker turns the
# dashboard's health cell red instead of hanging the page.
HEALTH_TIMEOUT = 3.0


class BrokerError(Exception):
    """Something a broker refused or could not do."""


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


class BrokerAdapter(ABC):
    name: str  # "kafka" | "sqs" | "rabbitmq" | "nats"

    def health(self) -> Health:
        """Never raises: an unreachable broker gives reachable=False and the error text."""
        started = time.perf_counter()
        try:
            version, destinations = self._probe()
        except Exception as exc:  # noqa: BLE001 - health reports every failure instead of raising it
            return Health(self.name, False, None, None, None, _describe(exc))
        latency_ms = round((time.perf_counter() - started) * 1000, 2)
        return Health(self.name, True, version, latency_ms, destinations, None)

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

        Adapters that cannot consume yet say so; the caller shows the error instead of guessing.
        """
        raise BrokerError(f"the {self.name} adapter does not support subscribe()")

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
    errors = []
    for address in addresses:
        host, _, port = address.strip().rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=HEALTH_TIMEOUT).close()
            return
        except (OSError, ValueError) as exc:
            errors.append(f"{address.strip()}: {exc}")
    raise BrokerUnavailable(f"{what} does not accept connections (" + "; ".join(errors) + ")")


# --- monitoring (issue #6): what the consumer-lag and queue-depth methods return ---


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
class JetStreamConsumer:
    stream: str
    name: str
    pending: int
    ack_pending: int
    redelivered: int
    waiting: int
