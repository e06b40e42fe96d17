"""RabbitMQ through kombu's py-amqp transport, plus the management HTTP API when one is configured."""

from __future__ import annotations

import base64
import json
import ssl
import struct
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import amqp
import amqp.transport
import kombu
import kombu.transport.pyamqp
from kombu.exceptions import OperationalError

from brokers.base import (
    AUTH_REFUSED,
    CERT_REJECTED,
    ERROR,
    HEALTH_TIMEOUT,
    BrokerAdapter,
    BrokerConfigError,
    BrokerError,
    BrokerUnavailable,
    Capability,
    Destination,
    DestinationNotFound,
    Lazy,
    Message,
    OutgoingMessage,
    PendingAge,
    PublishError,
    PublishResult,
    QueueDepth,
    Subscription,
    header_bytes,
    key_bytes,
    reason_for,
    secrets_of,
)
from brokers.tls import check_tls, ssl_context

KEY_HEADER = "x-key"
CONFIRM_TIMEOUT = 30.0
_CONNECTION_ERRORS = (
    OSError,
    OperationalError,
    amqp.exceptions.ConnectionError,
    amqp.exceptions.RecoverableConnectionError,
)


# The basic properties, in the order of their flag bits (AMQP 0-9-1, 4.2.6.1 and the Basic class's property list).
_PROPERTY_FIELDS = (
    ("content_type", "s"),
    ("content_encoding", "s"),
    ("application_headers", "F"),
    ("delivery_mode", "o"),
    ("priority", "o"),
    ("correlation_id", "s"),
    ("reply_to", "s"),
    ("expiration", "s"),
    ("message_id", "s"),
    ("timestamp", "L"),
    ("type", "s"),
    ("user_id", "s"),
    ("app_id", "s"),
    ("cluster_id", "s"),
)


def _lenient_properties(buf, offset: int) -> tuple[dict, int]:
    """Basic properties as py-amqp decodes them, except that a short string that is not UTF-8 stays bytes.

    py-amqp decodes every short-string property strictly, and RabbitMQ passes any bytes through: one message whose
    message_id (or type, app_id, ...) is not UTF-8 made py-amqp raise in the middle of a frame, which broke the
    connection, put the message back at the head of its queue, and so stopped every message behind it for good.
    """
    properties: dict[str, Any] = {}
    (flags,) = struct.unpack_from(">H", buf, offset)
    offset += 2
    for bit, (name, kind) in zip(range(15, 1, -1), _PROPERTY_FIELDS, strict=True):
        if not flags & (1 << bit):
            continue
        if kind == "s":
            (length,) = struct.unpack_from(">B", buf, offset)
            raw = bytes(buf[offset + 1 : offset + 1 + length])
            offset += 1 + length
            try:
                properties[name] = raw.decode("utf-8", "surrogatepass")
            except UnicodeDecodeError:
                properties[name] = raw
        elif kind == "o":
            (properties[name],) = struct.unpack_from(">B", buf, offset)
            offset += 1
        elif kind == "L":
            (properties[name],) = struct.unpack_from(">Q", buf, offset)
            offset += 8
        else:
            (properties[name],), offset = amqp.serialization.loads("F", buf, offset)
    return properties, offset


def _tolerant(decode):
    """py-amqp's own decoder for every message it can read, ours for the ones it cannot (see _lenient_properties)."""

    def decode_properties(buf, offset):
        try:
            return decode(buf, offset)
        except UnicodeDecodeError:
            return _lenient_properties(buf, offset)

    decode_properties.switchyard_tolerant = True
    return decode_properties


# py-amqp looks its property decoder up in this table for every content header it reads (a version without the table
# keeps its own decoder).
_DECODERS = getattr(amqp.serialization, "PROPERTY_CLASSES", {})
if amqp.spec.Basic.CLASS_ID in _DECODERS and not getattr(_DECODERS[amqp.spec.Basic.CLASS_ID], "switchyard_tolerant", 0):
    _DECODERS[amqp.spec.Basic.CLASS_ID] = _tolerant(_DECODERS[amqp.spec.Basic.CLASS_ID])


class RabbitMQAdapter(BrokerAdapter):
    """Publishes to "exchange/routing-key"; a destination without a slash is a queue on the default exchange.

    Without a management_url, list_destinations() can only return the queues this adapter declared with
    ensure_destination(): AMQP 0-9-1 itself has no way to list queues.
    """

    name = "rabbitmq"
    capabilities = frozenset({Capability.QUEUE_DEPTH, Capability.DEAD_LETTER_EXCHANGE, Capability.PENDING_AGE})
    max_message_bytes = 16 * 1024 * 1024

    def __init__(
        self,
        url: str,
        management_url: str | None = None,
        *,
        management_username: str | None = None,
        management_password: str | None = None,
        tls: dict | None = None,
    ):
        """`url`: amqp:// or amqps://user:password@host:port/vhost, the vhost percent-encoded ("/" is %2F).

        `tls` as in brokers.tls (CA, client certificate and key for mutual TLS, verify_hostname); it applies to
        amqps:// and to an https:// management_url alike. The management API logs in as management_username /
        management_password, else as the management URL's own user, else as the AMQP URL's.
        """
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("amqp", "amqps", "pyamqp"):
            raise BrokerConfigError(f"url: expected amqp:// or amqps://, got {parts.scheme or 'no scheme'}://")
        checked = check_tls(tls)
        if checked and parts.scheme != "amqps" and not (management_url or "").startswith("https:"):
            raise BrokerConfigError("tls is set but neither url is amqps:// nor management_url https://")
        self.url = url
        self.management_url = management_url.rstrip("/") if management_url else None
        self._ssl_context = ssl_context(checked) if checked else None
        self._client_certificate = bool(checked.get("cert_file"))
        management = urllib.parse.urlsplit(self.management_url or "")
        self._management_auth = (
            management_username or urllib.parse.unquote(management.username or "") or kombu_user(parts) or "guest",
            management_password or urllib.parse.unquote(management.password or "") or kombu_password(parts) or "guest",
        )
        self._secrets = secrets_of(
            kombu_password(parts), parts.password, management_password, management.password,
            urllib.parse.unquote(management.password or ""), checked.get("key_password"),
        )  # fmt: skip
        self._connection = Lazy(self._connect, lambda c: c.release())
        # A py-amqp connection is not thread-safe; every operation holds this lock for its short channel's life.
        self._lock = threading.RLock()
        self._declared: set[str] = set()
        # What this adapter declared and bound, so dead-letter discovery works without the management API (AMQP
        # cannot list queues or read their arguments): queue -> arguments, and (exchange, queue, routing key).
        self._arguments: dict[str, dict] = {}
        self._bindings: set[tuple[str, str, str]] = set()

    def __repr__(self) -> str:
        return f"<RabbitMQAdapter {_without_password(self.url)}>"

    def _kombu_connection(self) -> kombu.Connection:
        if self._ssl_context is not None and urllib.parse.urlsplit(self.url).scheme == "amqps":
            host = urllib.parse.urlsplit(self.url).hostname
            return kombu.Connection(
                self.url,
                connect_timeout=HEALTH_TIMEOUT,
                transport=_ContextSSLTransport,
                ssl={"ssl_context": self._ssl_context, "server_hostname": host},
            )
        return kombu.Connection(self.url, connect_timeout=HEALTH_TIMEOUT)

    def _connect(self) -> kombu.Connection:
        connection = self._kombu_connection()
        # kombu's connect() sleeps 2 s before a retry; give up after HEALTH_TIMEOUT instead, so health stays quick.
        try:
            connection.ensure_connection(
                max_retries=1, interval_start=0, interval_step=0, interval_max=0, timeout=HEALTH_TIMEOUT
            )
        except Exception as exc:
            connection.release()
            reason = AUTH_REFUSED if _is_access_refused(exc) else reason_for(exc)
            if reason == ERROR and self._client_certificate and _closed_after_tls_handshake(exc):
                # With TLS 1.3 the server checks our certificate after our side of the handshake is done: its
                # refusal (an "unknown CA" alert, then close) reaches py-amqp only as an EOF on the first write.
                reason = CERT_REJECTED
            raise BrokerUnavailable(self.redact(f"RabbitMQ at {self!r}: {exc}"), reason=reason) from exc
        return connection

    @contextmanager
    def _channel(self) -> Iterator[amqp.Channel]:
        """A fresh channel: closing it requeues anything left unacknowledged, and a channel error loses only it."""
        with self._lock:
            channel = None
            try:
                cached = self._connection.peek() is not None
                try:
                    channel = self._connection.get().channel()
                except _CONNECTION_ERRORS:
                    if not cached:
                        raise
                    # The cached connection may have died since its last use (broker restart): one fresh try.
                    self._connection.reset()
                    channel = self._connection.get().channel()
                yield channel
            except amqp.exceptions.NotFound as exc:
                raise DestinationNotFound(str(exc)) from exc
            except amqp.exceptions.ChannelError as exc:
                raise BrokerError(str(exc)) from exc
            except _CONNECTION_ERRORS as exc:
                self._connection.reset()
                raise BrokerUnavailable(f"RabbitMQ: {exc}") from exc
            finally:
                if channel is not None and channel.is_open:
                    try:
                        channel.close()
                    except Exception:  # noqa: BLE001 - the connection is reset on the next failure anyway
                        pass

    def _probe(self) -> tuple[str | None, int | None]:
        with self._channel():  # opening a channel is one round trip on the (cached) connection
            properties = self._connection.get().connection.server_properties
        version = properties.get("version")
        version = version.decode() if isinstance(version, bytes) else version
        return version, len(self._management_queues()) if self.management_url else None

    def list_destinations(self) -> list[Destination]:
        names = self._management_queues() if self.management_url else sorted(self._declared)
        return [Destination(name, "queue") for name in names]

    def _management_queues(self) -> list[str]:
        return sorted(queue["name"] for queue in self._management_get("queues", query="columns=name"))

    def ensure_destination(
        self, name: str, durable: bool = True, arguments: dict | None = None, **options: Any
    ) -> None:
        """Declare a queue. Declaring an existing queue with other arguments fails with PRECONDITION_FAILED."""
        with self._channel() as channel:
            channel.queue_declare(name, durable=durable, auto_delete=False, arguments=arguments)
        self._declared.add(name)
        self._arguments[name] = dict(arguments or {})

    def delete_destination(self, name: str) -> None:
        with self._channel() as channel:
            channel.queue_delete(name)  # deleting a missing queue is not an error in RabbitMQ
        self._declared.discard(name)
        self._arguments.pop(name, None)
        self._bindings = {b for b in self._bindings if b[1] != name}

    def publish_batch(self, messages: Iterable[OutgoingMessage]) -> list[PublishResult]:
        """Publish with publisher confirms: send everything, then wait for the broker's acks.

        Messages are mandatory, so one the broker cannot route to any queue (e.g. a missing queue on the default
        exchange) comes back as a basic.return and counts as a failure instead of vanishing.
        """
        messages = list(messages)
        if not messages:
            return []
        outcome: dict[int, str | None] = {}  # delivery tag -> None when confirmed, else the reason
        returned: dict[str, str] = {}  # message id -> reason

        def settle(reason: str | None):
            def callback(delivery_tag: int, multiple: bool) -> None:
                tags = range(1, delivery_tag + 1) if multiple else [delivery_tag]
                for tag in tags:
                    outcome.setdefault(tag, reason)

            return callback

        def on_return(exc, exchange, routing_key, message) -> None:
            returned[message.properties.get("message_id")] = f"unroutable ({exc.reply_text})"

        results = []
        with self._channel() as channel:
            channel.confirm_select()
            channel.events["basic_ack"].add(settle(None))
            channel.events["basic_nack"].add(settle("rejected by the broker (nack)"))
            channel.events["basic_return"].add(on_return)
            for message in messages:
                exchange, routing_key = _split(message.destination)
                headers = {k: header_bytes(v) for k, v in (message.headers or {}).items()}
                if message.key is not None:
                    headers[KEY_HEADER] = key_bytes(message.key)
                event_id = headers.get("x-event-id")
                message_id = event_id.decode(errors="replace") if event_id else uuid.uuid4().hex
                amqp_message = amqp.Message(
                    message.body,
                    application_headers=headers,
                    message_id=message_id,
                    delivery_mode=2,  # persistent
                    timestamp=int(time.time()),
                    content_type="application/octet-stream",
                )
                channel.basic_publish(amqp_message, exchange=exchange, routing_key=routing_key, mandatory=True)
                results.append(PublishResult(message.destination, message_id))

            connection = self._connection.get()
            deadline = time.monotonic() + CONFIRM_TIMEOUT
            while len(outcome) < len(messages) and time.monotonic() < deadline:
                try:
                    connection.drain_events(timeout=max(0.01, deadline - time.monotonic()))
                except TimeoutError:
                    break

        failures, confirmed = [], []
        for tag, (message, result) in enumerate(zip(messages, results, strict=True), start=1):
            reason = returned.get(result.message_id) or outcome.get(tag, "no confirmation in time")
            if reason:
                failures.append((message, reason))
            else:
                confirmed.append(result)
        if failures:
            raise PublishError("RabbitMQ did not confirm every message", failures, confirmed)
        return results

    def read(self, destination: str, max_messages: int = 10, timeout: float = 5.0) -> list[Message]:
        """basic_get up to max_messages, then reject them all with requeue, so the queue is left as it was.

        Stops as soon as the queue reports itself empty (the broker's count is exact, unlike Kafka's or SQS's), so
        the timeout only bounds a very slow broker.
        """
        found: list[Message] = []
        deadline = time.monotonic() + timeout
        with self._channel() as channel:
            channel.auto_decode = False  # bodies as the bytes that were sent (see RabbitMQSubscription)
            while len(found) < max_messages and time.monotonic() < deadline:
                raw = channel.basic_get(destination, no_ack=False)
                if raw is None:
                    break
                found.append(_to_message(destination, raw))
            # Holding them unacknowledged is what made basic_get return the next one each time; give them all back.
            for message in found:
                channel.basic_reject(message.ack_token, requeue=True)
        return found

    def close(self) -> None:
        with self._lock:
            self._connection.reset()

    def subscribe(self, destination: str, group: str, **options: Any) -> RabbitMQSubscription:
        """Consume queue `destination` with manual acks on a connection of its own (a consumer holds its channel).

        RabbitMQ has no groups: every subscriber of a queue competes for its messages. Unacked messages go back to
        the queue when the subscription's connection closes or dies.
        """
        # options (redeliver_after among them) need nothing here: unacked messages return when the channel closes.
        return RabbitMQSubscription(self._connect(), destination)

    def bind_queue(self, queue: str, exchange: str, routing_key: str = "", exchange_type: str = "direct") -> None:
        """Declare exchange `exchange` (durable) and bind `queue` to it, e.g. a dead-letter queue to its DLX."""
        with self._channel() as channel:
            channel.exchange_declare(exchange, exchange_type, durable=True, auto_delete=False)
            channel.queue_bind(queue, exchange, routing_key)
        self._bindings.add((exchange, queue, routing_key))

    def queue_arguments(self) -> dict[str, dict]:
        """Every queue's declared arguments (x-dead-letter-exchange, ...) from the management API; without one,
        those of the queues this adapter declared."""
        if not self.management_url:
            return {name: dict(arguments) for name, arguments in self._arguments.items()}
        queues = self._management_get("queues", query="columns=name,arguments")
        return {queue["name"]: queue.get("arguments") or {} for queue in queues}

    def queue_depth(self, name: str) -> QueueDepth:
        """Ready and consumers from a passive declare; unacked and rates only from the management API.

        A passive declare is one AMQP round trip and needs no plugin, but AMQP reports only ready messages and
        consumers; unacked counts and publish / deliver rates exist only in the management API.
        """
        try:
            with self._channel() as channel:
                ok = channel.queue_declare(name, passive=True)
        except amqp.exceptions.NotFound as exc:
            raise DestinationNotFound(f"no RabbitMQ queue {name!r}") from exc
        depth = QueueDepth(name, ready=ok.message_count, consumers=ok.consumer_count)
        if not self.management_url:
            return depth
        try:
            info = self._management_get("queues", item=name)
        except BrokerUnavailable:
            return depth  # the counts from AMQP stand; rates are a nicety
        stats = info.get("message_stats") or {}
        return QueueDepth(
            name,
            # The management API's counts refresh every few seconds; the passive declare's are current, so they win.
            ready=depth.ready,
            in_flight=int(info.get("messages_unacknowledged", 0)),
            consumers=depth.consumers,
            publish_rate=(stats.get("publish_details") or {}).get("rate"),
            deliver_rate=(stats.get("deliver_get_details") or {}).get("rate"),
        )

    def queue_depths(self, names: Iterable[str]) -> dict[str, QueueDepth]:
        """Ready count and consumers of each named queue by a passive declare, on one channel; missing ones left out.

        This needs no plugin, so the queues the console knows by name (dead-letter queues, outbox destinations) are
        watched where the management API is off. With the API, one GET of every queue adds unacked counts and rates.
        """
        pending = list(dict.fromkeys(names))
        found: dict[str, QueueDepth] = {}
        while pending:
            try:
                with self._channel() as channel:
                    while pending:
                        ok = channel.queue_declare(pending[0], passive=True)
                        found[pending[0]] = QueueDepth(pending[0], ready=ok.message_count, consumers=ok.consumer_count)
                        pending.pop(0)
            except DestinationNotFound:
                pending.pop(0)  # the broker closed the channel with a 404: the rest go on a new one
        if not (self.management_url and found):
            return found
        try:
            listed = self._management_get("queues", query="columns=name,messages_unacknowledged,message_stats")
        except BrokerUnavailable:
            return found  # the counts from AMQP stand; rates are a nicety
        for info in listed:
            depth = found.get(info.get("name"))
            if depth is None:
                continue
            stats = info.get("message_stats") or {}
            found[depth.name] = QueueDepth(
                depth.name,
                ready=depth.ready,  # the passive declare's count is current; the API's lags by seconds
                in_flight=int(info.get("messages_unacknowledged", 0)),
                consumers=depth.consumers,
                publish_rate=(stats.get("publish_details") or {}).get("rate"),
                deliver_rate=(stats.get("deliver_get_details") or {}).get("rate"),
            )
        return found

    # --- dead letters (issue #4): retention warnings ---

    def queue_retention(self, name: str) -> int | None:
        """Seconds a message may sit in queue `name` before RabbitMQ drops it: the lower of the queue's x-message-ttl
        argument and its policy's message-ttl; None if neither is set.

        Policies exist only in the management API (AMQP cannot read them, nor a queue's arguments): without one, only
        the x-message-ttl this adapter declared the queue with counts.
        """
        if not self.management_url:
            return _ttl_seconds([self._arguments.get(name, {}).get("x-message-ttl")])
        info = self._management_get("queues", item=name)
        arguments = info.get("arguments")
        policy = info.get("effective_policy_definition")  # None or [] (older versions) when no policy applies
        return _ttl_seconds(
            [
                arguments.get("x-message-ttl") if isinstance(arguments, dict) else None,
                policy.get("message-ttl") if isinstance(policy, dict) else None,
            ]
        )

    def pending_age(self, destination: str, group: str) -> PendingAge:
        """The queue's message TTL (x-message-ttl or a policy's message-ttl, the lower). Queues are FIFO, so the head
        is the oldest message not consumed: peeked for the time of its latest x-death, else its timestamp property.
        Messages unacked with some consumer cannot be peeked; if only those are left, the caller's time stands in."""
        retention = self.queue_retention(destination)
        if not retention:
            # Nothing expires, so do not peek: a peek marks the message redelivered (and counts as a delivery in a
            # quorum queue, whose delivery-limit could then drop it).
            return PendingAge(retention)
        found, dead_lettered_at = self.head_enqueued_at(destination)
        if found:
            return PendingAge(retention, dead_lettered_at, hidden=dead_lettered_at is None)
        return PendingAge(retention, hidden=bool(self.queue_depth(destination).in_flight))

    def head_enqueued_at(self, name: str) -> tuple[bool, datetime | None]:
        """Peek at the head of queue `name` (the oldest ready message: queues are FIFO) and give it back.

        Returns (whether there was a message, when it was dead-lettered): the time of its most recent x-death entry,
        else its timestamp property (when it was published, so no later than it entered the queue), else None.
        """
        with self._channel() as channel:
            raw = channel.basic_get(name, no_ack=False)
            if raw is None:
                return False, None
            try:
                return True, _dead_lettered_at(raw.properties)
            finally:
                # requeue=True puts it back at its place; closing the channel alone would do so too.
                channel.basic_reject(raw.delivery_info["delivery_tag"], requeue=True)

    def bindings(self) -> list[dict]:
        """Queue bindings as the management API's GET /api/bindings/{vhost} gives them (source, destination,
        destination_type, routing_key); without the API, the bindings this adapter made with bind_queue()."""
        if not self.management_url:
            return [
                {"source": e, "destination": q, "destination_type": "queue", "routing_key": k}
                for e, q, k in sorted(self._bindings)
            ]
        return self._management_get("bindings")

    def _management_get(self, collection: str, item: str | None = None, query: str = ""):
        """GET /api/<collection>/<vhost>[/<item>][?query] of the management API as parsed JSON."""
        parts = urllib.parse.urlsplit(self.management_url)
        amqp_parts = urllib.parse.urlsplit(self.url)
        vhost = urllib.parse.unquote(amqp_parts.path[1:]) if len(amqp_parts.path) > 1 else "/"
        user, password = self._management_auth
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        base = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        path = f"{base}/api/{collection}/{urllib.parse.quote(vhost, safe='')}"
        if item is not None:
            path += f"/{urllib.parse.quote(item, safe='')}"
        request = urllib.request.Request(
            path + (f"?{query}" if query else ""),
            headers={"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()},
        )
        context = self._ssl_context if parts.scheme == "https" else None
        try:
            with urllib.request.urlopen(request, timeout=HEALTH_TIMEOUT, context=context) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:
            reason = AUTH_REFUSED if exc.code == 401 else None
            message = self.redact(f"RabbitMQ management API at {base}: {exc}")
            raise BrokerUnavailable(message, reason=reason) from exc
        except OSError as exc:
            message = self.redact(f"RabbitMQ management API at {base}: {exc}")
            raise BrokerUnavailable(message, reason=reason_for(exc)) from exc


def _split(destination: str) -> tuple[str, str]:
    """'exchange/routing-key' -> (exchange, routing key); a bare name is a queue on the default exchange."""
    if "/" not in destination:
        return "", destination
    exchange, _, routing_key = destination.partition("/")
    return exchange, routing_key


def _to_message(queue: str, raw: amqp.Message) -> Message:
    """A delivered message as a Message. Never raises: whatever a publisher put in the body, the properties and the
    header table, the message comes back with its bytes, and what could not be read is named in parse_error."""
    problems: list[str] = []
    properties = raw.properties or {}
    headers: dict[str, bytes] = {}
    table = properties.get("application_headers")
    if isinstance(table, dict):
        for name, value in table.items():
            headers[_header_name(name, problems)] = _as_bytes(value)
    elif table is not None:
        problems.append(f"application_headers is a {type(table).__name__}, not a table")
    key = headers.pop(KEY_HEADER, None)
    for name, value in properties.items():
        if isinstance(value, bytes) and name != "application_headers":
            problems.append(f"property {name} is not UTF-8: {value!r}")
    message_id = properties.get("message_id")
    return Message(
        destination=queue,
        body=_body_bytes(raw.body, properties.get("content_encoding"), problems),
        key=key,
        headers=headers,
        message_id=_text(message_id) if message_id is not None else None,
        timestamp=_utc(properties.get("timestamp")),
        delivery_count=_count(headers.get("x-delivery-count")),  # only quorum queues count deliveries
        ack_token=raw.delivery_info["delivery_tag"],
        parse_error="; ".join(problems) or None,
    )


def _body_bytes(body: Any, content_encoding: Any, problems: list[str]) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body)
    if isinstance(body, str):
        # py-amqp decodes the body of a message that names a content_encoding (its channels' auto_decode, which
        # the subscription and read() turn off, so this is for a channel that keeps it). The same codec gives the
        # bytes back for every codec whose encode undoes its decode (utf-8, latin-1, ascii, cp1252, ...).
        if isinstance(content_encoding, str) and content_encoding:
            try:
                return body.encode(content_encoding)
            except (LookupError, UnicodeError, ValueError, TypeError):
                pass
        # Otherwise UTF-8 with surrogatepass: it encodes every str (surrogateescape fails on surrogates outside
        # U+DC80-U+DCFF), and it is the exact inverse of how py-amqp itself decodes AMQP strings.
        return body.encode("utf-8", "surrogatepass")
    problems.append(f"the client gave the body as {type(body).__name__}; stored as its text")
    return str(body).encode("utf-8", "surrogatepass")


def _header_name(name: Any, problems: list[str]) -> str:
    if isinstance(name, str):
        return name
    # py-amqp gives a table key that is not UTF-8 as bytes.
    text = bytes(name).decode("utf-8", "backslashreplace") if isinstance(name, bytes | bytearray) else str(name)
    problems.append(f"header name {name!r} is not UTF-8; shown as {text!r}")
    return text


def _text(value: Any) -> str:
    # backslashreplace, not replace: two message ids that differ only in bytes that are not UTF-8 stay two ids.
    return value if isinstance(value, str) else _as_bytes(value).decode("utf-8", "backslashreplace")


def _count(value: bytes | None) -> int | None:
    try:
        count = int(value) if value else None
    except ValueError:
        return None  # a publisher's own x-delivery-count that is not a number: the header is kept, the count unknown
    return count if count is not None and 0 <= count < 2**31 else None


def _ttl_seconds(values: list[Any]) -> int | None:
    """The lowest valid TTL among `values` (milliseconds) in whole seconds, at least 1; None if there is none."""
    valid = [v for v in values if isinstance(v, int) and not isinstance(v, bool) and v >= 0]
    if not valid:
        return None
    return max(1, min(valid) // 1000) if min(valid) else 0


def _dead_lettered_at(properties: dict) -> datetime | None:
    """When a message entered its dead-letter queue, from headers a publisher may have forged: anything that is not
    what RabbitMQ writes is ignored."""
    headers = properties.get("application_headers")
    deaths = headers.get("x-death") if isinstance(headers, dict) else None
    # RabbitMQ puts the most recent dead-lettering first; py-amqp decodes its AMQP timestamp to a naive UTC datetime.
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        when = _utc(deaths[0].get("time"))
        if when is not None:
            return when
    return _utc(properties.get("timestamp"))


def _utc(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _as_bytes(value: Any) -> bytes:
    """A header value as bytes, the same bytes for the same value every time.

    py-amqp returns a long string as str when it is valid UTF-8 and as bytes otherwise. Numbers, booleans, decimals
    and timestamps become their text; tables and arrays (RabbitMQ's own x-death, a publisher's nested ones) become
    JSON, with timestamps in ISO 8601 (UTC), decimals as strings (exact) and bytes that are not UTF-8 as
    {"base64": ...}, the way dead-letter headers are stored.
    """
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")  # the inverse of py-amqp's decode
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, dict | list | tuple):
        return json.dumps(_plain(value), ensure_ascii=False).encode("utf-8", "surrogatepass")
    return str(_plain(value)).encode("utf-8", "surrogatepass")


def _plain(value: Any) -> Any:
    """A header table's value as JSON-able data (see _as_bytes)."""
    if isinstance(value, dict):
        return {(k if isinstance(k, str) else _plain_bytes(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return _plain_bytes(value)
    if isinstance(value, datetime):
        when = _utc(value)
        return when.isoformat() if when else str(value)
    if isinstance(value, Decimal):
        return str(value)
    if value is None or isinstance(value, str | int | float):  # bool is an int
        return value
    return str(value)


def _plain_bytes(value: bytes | bytearray | memoryview) -> Any:
    try:
        return bytes(value).decode()
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(bytes(value)).decode()}


class RabbitMQSubscription(Subscription):
    """basic_get with manual acks; ack = basic_ack, nack = reject with requeue, reject = to the queue's DLX."""

    def __init__(self, connection: kombu.Connection, queue: str):
        self._connection = connection
        self._channel = connection.channel()
        # Bodies as the bytes that were sent: py-amqp would otherwise decode the body of every message that names a
        # content_encoding into a str (and leave it bytes when that fails), so what came out depended on the codec.
        self._channel.auto_decode = False
        self.destination = queue

    def poll(self, max_messages: int = 100, timeout: float = 1.0) -> list[Message]:
        found: list[Message] = []
        deadline = time.monotonic() + timeout
        try:
            while len(found) < max_messages:
                raw = self._channel.basic_get(self.destination, no_ack=False)
                if raw is not None:
                    found.append(_to_message(self.destination, raw))
                    continue
                if found or time.monotonic() >= deadline:
                    break
                time.sleep(0.05)  # AMQP's basic_get cannot wait; a short nap keeps an idle poll cheap
        except amqp.exceptions.NotFound as exc:
            raise DestinationNotFound(str(exc)) from exc
        except _CONNECTION_ERRORS as exc:
            raise BrokerUnavailable(f"RabbitMQ: {exc}") from exc
        return found

    def ack(self, messages) -> None:
        for message in messages:
            self._channel.basic_ack(message.ack_token)

    def nack(self, messages) -> None:
        for message in messages:
            self._channel.basic_reject(message.ack_token, requeue=True)

    def reject(self, messages) -> None:
        """Refuse without requeue: RabbitMQ dead-letters them through the queue's x-dead-letter-exchange."""
        for message in messages:
            self._channel.basic_reject(message.ack_token, requeue=False)

    def close(self) -> None:
        try:
            if self._channel.is_open:
                self._channel.close()
        finally:
            self._connection.release()


def kombu_user(parts: urllib.parse.SplitResult) -> str | None:
    return urllib.parse.unquote(parts.username) if parts.username else None


def kombu_password(parts: urllib.parse.SplitResult) -> str | None:
    return urllib.parse.unquote(parts.password) if parts.password else None


def _without_password(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{userinfo.partition(':')[0]}:***@{host}"))


def _closed_after_tls_handshake(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLEOFError | ConnectionResetError | BrokenPipeError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _is_access_refused(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, amqp.exceptions.AccessRefused):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class _ContextAmqpTransport(amqp.transport.SSLTransport):
    """py-amqp's TLS transport wrapping the socket with a ready SSLContext: py-amqp's own options cannot take a key
    password, and its hostname check follows SNI instead of verify_hostname."""

    def _wrap_socket(self, sock, ssl_context=None, server_hostname=None, **_options):
        return ssl_context.wrap_socket(sock, server_hostname=server_hostname)


class _ContextAmqpConnection(kombu.transport.pyamqp.Connection):
    def Transport(self, host, connect_timeout, ssl=False, read_timeout=None, write_timeout=None,  # noqa: N802
                  socket_settings=None, **kwargs):  # fmt: skip
        if isinstance(ssl, dict) and ssl.get("ssl_context") is not None:
            return _ContextAmqpTransport(
                host, connect_timeout=connect_timeout, ssl=ssl, read_timeout=read_timeout,
                write_timeout=write_timeout, socket_settings=socket_settings, **kwargs,
            )  # fmt: skip
        return super().Transport(host, connect_timeout, ssl, read_timeout, write_timeout, socket_settings, **kwargs)


class _ContextSSLTransport(kombu.transport.pyamqp.SSLTransport):
    """kombu's amqps transport on _ContextAmqpConnection."""

    Connection = _ContextAmqpConnection
