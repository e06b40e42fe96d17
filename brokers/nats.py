"""NATS JetStream through nats-py, behind the same synchronous interface as the other adapters.

nats-py is asyncio-only. The adapter owns a private event loop running in a daemon thread, and every public method
submits a coroutine to it with run_coroutine_threadsafe and waits for the result, so Django views and Celery tasks can
call it like any blocking client, from any thread.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import threading
import urllib.parse
from collections.abc import Coroutine, Iterable
from datetime import datetime
from typing import Any

import nats
from nats.errors import AuthorizationError, ConnectionClosedError, NoRespondersError, NoServersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import APIError, NoStreamResponseError, NotFoundError

from brokers.base import (
    AUTH_REFUSED,
    HEALTH_TIMEOUT,
    TIMED_OUT,
    BrokerAdapter,
    BrokerConfigError,
    BrokerError,
    BrokerUnavailable,
    Capability,
    Destination,
    DestinationNotFound,
    JetStreamConsumer,
    Lazy,
    Message,
    OutgoingMessage,
    PendingAge,
    PublishError,
    PublishResult,
    Subscription,
    check_tcp,
    header_bytes,
    key_bytes,
    reason_for,
    secrets_of,
)
from brokers.tls import check_tls, readable_file, ssl_context

logger = logging.getLogger(__name__)

KEY_HEADER = "x-key"
# NATS header values are text lines: bytes that are not UTF-8 (or hold a line break) travel base64-encoded under the
# header's name plus this suffix, and are decoded back on read. (Not ";b64": nats-py only accepts RFC 7230 token
# characters in header names, and ";" is not one.)
B64_SUFFIX = "~b64"
REQUEST_TIMEOUT = 10.0
NO_WAIT_ANSWER = 2.0  # seconds a no_wait pull request may take to be answered before the consumer is looked up


class _RawHeaders(dict):
    """nats-py's parsed headers of a delivered message, plus the header block as it came (`raw`)."""

    raw: bytes = b""


def _keeping_raw_headers(parse):
    """Wrap nats-py's header parser so a delivered message keeps its header block as it came.

    nats-py keeps only its parse, which loses what it cannot read: values that are not UTF-8 become U+FFFD, lines
    with a name that is not ASCII or without a colon are dropped, and a status line whose text is not UTF-8 raises
    inside its read loop, which drops the connection and every message in flight (so one such message, redelivered
    at the head of its consumer, stopped every message behind it). With the block kept, _to_message parses it
    itself (_parse_header_block) and names what it could not read.
    """

    async def process_headers(self, headers):
        try:
            parsed = await parse(self, headers)
        except Exception:  # noqa: BLE001 - whatever nats-py could not parse, _parse_header_block reports
            parsed = None
        if not headers or (parsed is None and len(headers) <= len(b"NATS/1.0\r\n\r\n")):
            return parsed  # no block, or an empty one: nothing to keep, and nats-py's answer stands
        kept = _RawHeaders(parsed or {})
        kept.raw = bytes(headers)
        return kept

    process_headers.switchyard_keeps_raw = True
    return process_headers


# nats-py calls this for every message it reads; a version without it simply gives parsed headers only.
_process_headers = getattr(nats.aio.client.Client, "_process_headers", None)
if _process_headers is not None and not getattr(_process_headers, "switchyard_keeps_raw", False):
    nats.aio.client.Client._process_headers = _keeping_raw_headers(_process_headers)


class _Connection:
    """The loop thread and the client living on it."""

    def __init__(self, options: dict[str, Any], jetstream: dict[str, Any]):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="nats-adapter-loop", daemon=True)
        self.thread.start()
        self.errors: list[Exception] = []  # what the client reported while connecting (e.g. an auth violation)
        try:
            self.client = self.run(self._connect(options), HEALTH_TIMEOUT + 1)
        except BaseException:
            self.stop()
            raise
        # The JetStream API of a domain lives under $JS.<domain>.API (the manager takes only the prefix).
        domain = jetstream.get("domain")
        self.jsm = self.client.jsm(**({"prefix": f"$JS.{domain}.API"} if domain else {}))
        self.js = self.client.jetstream(**jetstream)

    async def _connect(self, options: dict[str, Any]):
        async def log_error(exc: Exception) -> None:
            self.errors.append(exc)
            logger.debug("NATS client error: %s", type(exc).__name__)

        # Reconnect forever once connected (a long-lived console outlives broker restarts); the first connection is
        # bounded by wait_for instead, since nats-py retries a refused first connection too.
        connect = nats.connect(
            **options,
            connect_timeout=HEALTH_TIMEOUT,
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
            error_cb=log_error,
        )
        try:
            return await asyncio.wait_for(connect, HEALTH_TIMEOUT)
        except Exception as exc:
            # nats-py retries an authorization violation or a TLS failure until the timeout and then reports only
            # the timeout; the error it met on the way is the one that explains it.
            cause = next((e for e in reversed(self.errors) if _connect_reason(e) != TIMED_OUT), None)
            if cause is not None:
                raise BrokerUnavailable(f"NATS: {_error_text(cause)}", reason=_connect_reason(cause)) from exc
            raise

    def run(self, coro: Coroutine, timeout: float = REQUEST_TIMEOUT):
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError as exc:  # ours, or one inside the coroutine (asyncio's is the same class)
            future.cancel()
            raise BrokerUnavailable(f"NATS did not answer within {timeout:g} s", reason=TIMED_OUT) from exc
        except (OSError, NatsTimeout, NoServersError, ConnectionClosedError) as exc:
            raise BrokerUnavailable(f"NATS: {exc or type(exc).__name__}", reason=reason_for(exc)) from exc

    def stop(self) -> None:
        if getattr(self, "client", None) is not None and not self.client.is_closed:
            try:
                self.run(self.client.close(), 5)
            except Exception:  # noqa: BLE001 - closing a broken connection may fail; the loop goes anyway
                pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _connect_reason(exc: BaseException) -> str:
    if isinstance(exc, AuthorizationError):
        return AUTH_REFUSED
    return reason_for(exc)


class NatsAdapter(BrokerAdapter):
    """Publishes to subjects; lists, ensures, reads and deletes streams."""

    name = "nats"
    capabilities = frozenset(
        {
            Capability.STREAM_CONSUMERS,
            Capability.DELIVERY_ADVISORIES,
            Capability.UNIQUE_PUBLISH_ID,
            Capability.SEQUENCES,
            Capability.PENDING_AGE,
        }
    )
    max_message_bytes = 1_048_576

    def __init__(
        self,
        servers: str | list[str] | None = None,
        *,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        creds_file: str | None = None,
        nkey_seed_file: str | None = None,
        tls: dict | None = None,
        jetstream_domain: str | None = None,
        url: str | None = None,
    ):
        """`servers`: URLs as a list or one comma-separated string (`url` is the older name of the same thing).

        One way to authenticate: `user` and `password`, `token`, `creds_file` (a .creds file: user JWT and seed, as
        `nsc` or Synadia Cloud give it) or `nkey_seed_file`. `tls` as in brokers.tls (CA, client certificate for
        mutual TLS). `jetstream_domain` sends JetStream API calls to that domain (a leaf node's or a hub's).
        Settings are checked here; BrokerConfigError names the bad key.
        """
        given = servers if servers is not None else url
        urls = [u.strip() for u in (given.split(",") if isinstance(given, str) else list(given or [])) if u.strip()]
        if not urls:
            raise BrokerConfigError("servers: at least one NATS URL is needed (e.g. nats://127.0.0.1:4222)")
        methods = [m for m, v in (("user", user), ("token", token), ("creds_file", creds_file),
                                  ("nkey_seed_file", nkey_seed_file)) if v]  # fmt: skip
        if len(methods) > 1:
            raise BrokerConfigError(f"choose one way to authenticate, not {' and '.join(methods)}")
        if bool(user) != bool(password):
            raise BrokerConfigError("user and password go together")
        options: dict[str, Any] = {"servers": urls}
        secrets = list(secrets_of(password, token))
        for u in urls:  # credentials written into a URL (nats://user:password@host) are secrets too
            parts = urllib.parse.urlsplit(u)
            secrets += secrets_of(urllib.parse.unquote(parts.password or ""), parts.password)
            if parts.username and not parts.password:  # nats://TOKEN@host
                secrets += secrets_of(urllib.parse.unquote(parts.username), parts.username)
        if user:
            options.update(user=user, password=password)
        if token:
            options["token"] = token
        if creds_file:
            options["user_credentials"] = readable_file(creds_file, "creds_file")
        if nkey_seed_file:
            path = readable_file(nkey_seed_file, "nkey_seed_file")
            seed = open(path).read().strip()  # noqa: SIM115 - read once, here, to check it and redact it
            if not seed.startswith("SU"):
                raise BrokerConfigError(f"nkey_seed_file: {path!r} does not hold a user nkey seed (SU...)")
            secrets += secrets_of(seed)
            options["nkeys_seed_str"] = seed
        checked = check_tls(tls)
        if checked:
            options["tls"] = ssl_context(checked)
            # nats-py checks the certificate against the URL's host; with several servers it needs one name.
            hosts = {urllib.parse.urlsplit(u).hostname for u in urls}
            if len(hosts) == 1:
                options["tls_hostname"] = hosts.pop()
        self.servers = [_without_credentials(u) for u in urls]
        self.url = ",".join(self.servers)
        self.jetstream_domain = jetstream_domain or None
        self._auth = methods[0] if methods else None
        self._secrets = tuple(dict.fromkeys(s for s in secrets if s))
        jetstream = {"domain": self.jetstream_domain} if self.jetstream_domain else {}
        self._connection = Lazy(lambda: _Connection(options, jetstream), _Connection.stop)

    def __repr__(self) -> str:
        extra = "".join(f" {k}" for k in (self._auth, self.jetstream_domain and f"domain={self.jetstream_domain}") if k)
        return f"<NatsAdapter {self.url}{extra}>"

    def _conn(self) -> _Connection:
        connection = self._connection.get()
        if connection.client.is_closed:
            self._connection.reset()
            connection = self._connection.get()
        return connection

    def _run(self, make_coro, timeout: float = REQUEST_TIMEOUT):
        connection = self._conn()
        try:
            return connection.run(make_coro(connection), timeout)
        except NotFoundError as exc:
            raise DestinationNotFound(exc.description or str(exc)) from exc
        except APIError as exc:
            raise BrokerError(f"NATS: {exc.description or exc}") from exc

    def _probe(self) -> tuple[str | None, int | None]:
        servers = [urllib.parse.urlsplit(u).netloc for u in self.servers]
        check_tcp(servers, f"NATS at {self.url}")
        account = self._run(lambda c: c.jsm.account_info(), HEALTH_TIMEOUT)
        version = self._conn().client.connected_server_version
        return f"{version.major}.{version.minor}.{version.patch}", account.streams

    def list_destinations(self) -> list[Destination]:
        streams = self._run(lambda c: c.jsm.streams_info())
        return sorted((Destination(s.config.name, "stream") for s in streams), key=lambda d: d.name)

    def ensure_destination(self, name: str, subjects: list[str] | None = None, **config: Any) -> None:
        """Create stream `name` capturing `subjects` (default: the name itself and everything below it)."""

        async def ensure(c: _Connection) -> None:
            try:
                await c.jsm.stream_info(name)
            except NotFoundError:
                await c.jsm.add_stream(name=name, subjects=subjects or [name, f"{name}.>"], **config)

        self._run(ensure)

    def delete_destination(self, name: str) -> None:
        try:
            self._run(lambda c: c.jsm.delete_stream(name))
        except DestinationNotFound:
            pass

    def publish_batch(self, messages: Iterable[OutgoingMessage]) -> list[PublishResult]:
        """Send every JetStream publish at once and gather the acks.

        The header x-event-id becomes Nats-Msg-Id, so a retried publish of the same event within the stream's
        duplicate window is acknowledged without being stored twice.
        """
        messages = list(messages)

        async def publish_all(c: _Connection) -> list:
            return await asyncio.gather(
                *(c.js.publish(m.destination, m.body, headers=_nats_headers(m)) for m in messages),
                return_exceptions=True,
            )

        acks = self._run(publish_all, REQUEST_TIMEOUT + 5)
        results, failures = [], []
        for message, ack in zip(messages, acks, strict=True):
            if isinstance(ack, BaseException):
                failures.append((message, _publish_failure(ack)))
            else:
                event_id = (message.headers or {}).get("x-event-id")
                message_id = header_bytes(event_id).decode(errors="replace") if event_id else None
                results.append(PublishResult(message.destination, message_id, offset=ack.seq))
        if failures:
            raise PublishError("NATS did not confirm every message", failures, results)
        return results

    def read(self, destination: str, max_messages: int = 10, timeout: float = 5.0) -> list[Message]:
        """Get messages by sequence number from the start of stream `destination`; nothing is consumed.

        Each message's destination is its subject (not the stream), so it can be published again as it was.
        """

        async def read_stream(c: _Connection) -> list[Message]:
            state = (await c.jsm.stream_info(destination)).state
            found: list[Message] = []
            seq = state.first_seq
            while len(found) < max_messages and seq <= state.last_seq:
                # Ask for a window at once; sequences deleted from the middle of the stream answer "not found".
                window = range(seq, min(state.last_seq, seq + max_messages - len(found) - 1) + 1)
                raws = await asyncio.gather(*(c.jsm.get_msg(destination, s) for s in window), return_exceptions=True)
                for raw in raws:
                    if isinstance(raw, NotFoundError):
                        continue
                    if isinstance(raw, BaseException):
                        raise raw
                    found.append(_to_message(raw))
                seq = window.stop
            return found[:max_messages]

        return self._run(read_stream, timeout)

    def close(self) -> None:
        self._connection.reset()

    def subscribe(self, destination: str, group: str, **options: Any) -> NatsSubscription:
        """A durable pull consumer `group` on stream `destination`, explicit acks, from the start of the stream.

        options: `ack_wait` (seconds before an unacked message is redelivered, default 30), `max_deliver` (default
        unlimited), `filter_subject`.
        """
        config = {
            "durable_name": group,
            "ack_policy": "explicit",
            "deliver_policy": "all",
            "ack_wait": float(options.get("ack_wait", options.get("redeliver_after", 30))),
            "max_deliver": int(options.get("max_deliver", -1)),
        }
        if options.get("filter_subject"):
            config["filter_subject"] = options["filter_subject"]

        self._run(lambda c: c.jsm.add_consumer(destination, **config))
        return NatsSubscription(self, destination, group)

    def consumer_info(self, stream: str) -> list[JetStreamConsumer]:
        """Every consumer of stream `stream`: pending (not yet delivered), ack pending, redelivered, waiting pulls."""

        async def info(c: _Connection) -> list[JetStreamConsumer]:
            consumers = await c.jsm.consumers_info(stream)
            return [
                JetStreamConsumer(
                    stream=stream,
                    name=ci.name,
                    pending=ci.num_pending or 0,
                    ack_pending=ci.num_ack_pending or 0,
                    redelivered=ci.num_redelivered or 0,
                    waiting=ci.num_waiting or 0,
                )
                for ci in consumers
            ]

        return self._run(info)

    def delete_consumer(self, stream: str, name: str) -> None:
        """Remove durable consumer `name` of stream `stream` (a gone ingest source's durable; test clean-up)."""
        self._run(lambda c: c.jsm.delete_consumer(stream, name))

    def message_at(self, stream: str, seq: int) -> Message:
        """The stored message with sequence `seq` of stream `stream` (DestinationNotFound if it is gone); used to
        copy a message a consumer gave up on (a max-deliveries advisory names only its sequence)."""
        return _to_message(self._run(lambda c: c.jsm.get_msg(stream, seq)))

    # --- dead letters (issue #4): retention warnings ---

    def pending_age(self, destination: str, group: str) -> PendingAge:
        """The stream's max_age against the first message durable `group` has not acked (the one after its ack
        floor; the stream's first message if the durable does not exist yet)."""
        pending = self.unacked(destination, group)
        return PendingAge(self.stream_retention(destination), pending[0].timestamp if pending else None)

    def stream_retention(self, name: str) -> int | None:
        """Seconds stream `name` keeps a message (its max_age); None when unlimited (max_age 0)."""
        max_age = self._run(lambda c: c.jsm.stream_info(name)).config.max_age
        return max(1, round(max_age)) if max_age and max_age > 0 else None

    def unacked(self, stream: str, durable: str, filter_subject: str | None = None, limit: int = 1) -> list[Message]:
        """Up to `limit` messages of stream `stream`, oldest first, from the first one consumer `durable` has not
        acked (the whole stream if the consumer does not exist yet), matching the consumer's filter subject, or
        `filter_subject` when it has none.

        The consumer's ack floor is the last message of the acked prefix, so the next one is surely not acked; later
        ones may have been acked out of order and are still returned. Nothing is consumed. The messages carry no
        headers: a publisher's malformed header must not stop the caller from seeing their sequence and time.
        """

        async def pending(c: _Connection) -> list[Message]:
            state = (await c.jsm.stream_info(stream)).state
            subject = filter_subject
            try:
                consumer = await c.jsm.consumer_info(stream, durable)
            except NotFoundError:  # the stream exists (asked above), so the consumer is what is missing
                acked = 0
            else:
                acked = consumer.ack_floor.stream_seq if consumer.ack_floor else 0
                subject = consumer.config.filter_subject or subject
            found: list[Message] = []
            seq = max(state.first_seq, acked + 1)
            while len(found) < limit and seq <= state.last_seq:
                try:
                    # next_by_subj: the first message at or after seq on the subject, so deleted sequences are skipped.
                    raw = await c.jsm.get_msg(stream, seq, subject=subject or ">", next=True)
                except NotFoundError:
                    break  # nothing more on that subject
                found.append(_stored(raw))
                seq = raw.seq + 1
            return found

        return self._run(pending, REQUEST_TIMEOUT + limit * 0.1)

    def stored_at(self, stream: str, seq: int) -> datetime:
        """When message `seq` of stream `stream` was stored, which max_age counts from (DestinationNotFound if it is
        gone)."""
        return self._run(lambda c: c.jsm.get_msg(stream, seq)).time


def _nats_headers(message: OutgoingMessage) -> dict[str, str] | None:
    raw = {name: header_bytes(value) for name, value in (message.headers or {}).items()}
    if message.key is not None:
        raw[KEY_HEADER] = key_bytes(message.key)
    headers = {}
    for name, value in raw.items():
        try:
            text = value.decode()
            if "\r" in text or "\n" in text:
                raise UnicodeDecodeError("utf-8", value, 0, 1, "line break")
            headers[name] = text
        except UnicodeDecodeError:
            headers[name + B64_SUFFIX] = base64.b64encode(value).decode()
    if "x-event-id" in headers:
        # A caller's own Nats-Msg-Id wins: a replay re-sends an event on purpose and must not be deduplicated.
        headers.setdefault("Nats-Msg-Id", headers["x-event-id"])
    return headers or None


def _to_message(raw) -> Message:
    """A stored or delivered message as a Message. Never raises: the header block is parsed from its bytes when
    they are at hand (a delivered message's, see _keeping_raw_headers; a stored one's from the stream API), and what
    could not be read is named in parse_error."""
    problems: list[str] = []
    block = _header_block(raw)
    if block is not None:
        parsed, problems = _parse_header_block(block)
        if problems:
            problems.append(f"header block as received: {block[:2000]!r}")
    else:
        parsed = {str(name): _text_bytes(value) for name, value in (raw.headers or {}).items()}
    headers: dict[str, bytes] = {}
    for name, value in parsed.items():
        if name.endswith(B64_SUFFIX):
            try:
                headers[name.removesuffix(B64_SUFFIX)] = base64.b64decode(value, validate=True)
                continue
            except (binascii.Error, ValueError):
                pass  # not ours, or mangled: kept as it came, under its own name, rather than failing the read
        headers[name] = value
    key = headers.pop(KEY_HEADER, None)
    if "Nats-Msg-Id" in headers and headers["Nats-Msg-Id"] == headers.get("x-event-id"):
        del headers["Nats-Msg-Id"]  # added by publish; not part of what the publisher sent
    return Message(
        destination=raw.subject,
        body=bytes(raw.data or b""),
        key=key,
        headers=headers,
        message_id=headers.get("x-event-id", b"").decode(errors="replace") or None,
        offset=raw.seq,
        timestamp=raw.time,
        parse_error="; ".join(problems) or None,
    )


def _header_block(raw) -> bytes | None:
    kept = getattr(getattr(raw, "headers", None), "raw", None)
    if kept:
        return kept
    stored = getattr(raw, "hdrs", None)  # the stream API's answer (get_msg) carries the block in base64
    if stored:
        try:
            return base64.b64decode(stored)
        except (binascii.Error, ValueError):
            return None
    return None


def _parse_header_block(block: bytes) -> tuple[dict[str, bytes], list[str]]:
    """A NATS header block ("NATS/1.0[ status[ description]]\r\n", then "Name: value" lines) as names and the
    value bytes as they were sent, and the problems found. A status line becomes the headers Status and
    Description, as nats-py and nats.go show it."""
    headers: dict[str, bytes] = {}
    problems: list[str] = []
    lines = block.split(b"\r\n")
    first = lines[0]
    if first.startswith(b"NATS/1.0"):
        code, _, description = first[len(b"NATS/1.0") :].strip().partition(b" ")
        if code:
            headers["Status"] = code
        if description.strip():
            headers["Description"] = description.strip()
        lines = lines[1:]
    else:
        problems.append(f"the header block does not start with NATS/1.0 but {first[:100]!r}")
    for line in lines:
        if not line:
            continue
        name, colon, value = line.partition(b":")
        if not colon or not name.strip():
            problems.append(f"a header line without a name: {line[:200]!r}")
            continue
        try:
            text = name.strip().decode()
        except UnicodeDecodeError:
            text = name.strip().decode("utf-8", "backslashreplace")
            problems.append(f"header name {name.strip()!r} is not UTF-8; shown as {text!r}")
        headers[text] = value.strip(b" \t")
    return headers, problems


def _text_bytes(value: Any) -> bytes:
    # nats-py's parse: str, or (the stream API's email parser, for a value that is not ASCII) a Header object.
    return value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")


def _stored(raw) -> Message:
    return Message(destination=raw.subject, body=raw.data or b"", key=None, offset=raw.seq, timestamp=raw.time)


def _publish_failure(exc: BaseException) -> str:
    if isinstance(exc, NoStreamResponseError | NoRespondersError):
        return "no stream captures this subject"
    if isinstance(exc, APIError):
        return exc.description or str(exc)
    return str(exc) or type(exc).__name__


class NatsSubscription(Subscription):
    """Pull requests to a durable consumer; ack = a confirmed ack (ack_sync), nack = nak (redeliver now).

    The pull requests are made here rather than with nats-py's fetch(), which takes any message whose headers carry
    a status line (NATS/1.0 503, 408, 404, 100 ...) for the server's own status answer: it raised on a stored 503 and
    silently skipped a stored 404 or 408, never acked, redelivered and skipped again. JetStream delivers every stored
    message with an ack subject as its reply, and its status answers without one: that tells them apart.
    """

    def __init__(self, adapter: NatsAdapter, destination: str, durable: str):
        self._adapter = adapter
        self.destination = destination
        self._durable = durable
        self._next = f"$JS.API.CONSUMER.MSG.NEXT.{destination}.{durable}"
        self._inbox = None  # one subscription for every pull request's answers, made on the first poll

    def poll(self, max_messages: int = 100, timeout: float = 1.0) -> list[Message]:
        async def fetch(c: _Connection) -> list:
            if self._inbox is None:
                self._inbox = await c.client.subscribe(c.client.new_inbox())
            # What is there now, at once; else wait up to `timeout` for one message, so no pull request is left open
            # on the server after this returns (it would deliver to nobody until ack_wait ran out).
            found, answered = await self._pull(c, {"batch": max_messages, "no_wait": True}, NO_WAIT_ANSWER)
            if not answered:
                # JetStream answers a no_wait pull at once, with messages or 404; for a consumer (or stream) that no
                # longer exists nobody answers at all. Ask, so a deleted stream is told apart from a slow server.
                await c.jsm.consumer_info(self.destination, self._durable)  # NotFoundError: _run maps it
            if not found and timeout > 0:
                found, _ = await self._pull(c, {"batch": 1, "expires": int(timeout * 1e9)}, timeout + 1)
            return found

        return [_fetched_to_message(raw) for raw in self._adapter._run(fetch, timeout + 2 * REQUEST_TIMEOUT)]

    async def _pull(self, c: _Connection, request: dict, wait: float) -> tuple[list, bool]:
        """Send one pull request; (the stored messages it brought, whether anything answered it)."""
        await c.client.publish(self._next, json.dumps(request).encode(), reply=self._inbox.subject)
        found: list = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while len(found) < request["batch"]:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                msg = await self._inbox.next_msg(timeout=remaining)
            except (NatsTimeout, TimeoutError):
                break
            if msg.reply and msg.reply.startswith("$JS.ACK."):
                found.append(msg)
                continue
            status = str((msg.headers or {}).get("Status", ""))
            description = str((msg.headers or {}).get("Description", ""))
            if status == "503" or (status == "409" and "deleted" in description.lower()):
                raise DestinationNotFound(f"no consumer on NATS stream {self.destination!r} ({status} {description})")
            if status in ("404", "408", "409"):
                return found, True  # no messages (now), the request expired, or the server ended it
            # 100 (heartbeat, flow control) and anything else: not an answer to act on
        return found, bool(found)

    def ack(self, messages) -> None:
        async def ack_all(c: _Connection) -> None:
            await asyncio.gather(*(m.ack_token.ack_sync(timeout=REQUEST_TIMEOUT) for m in messages))

        if messages:
            self._adapter._run(ack_all, REQUEST_TIMEOUT + 5)

    def nack(self, messages) -> None:
        async def nak_all(c: _Connection) -> None:
            await asyncio.gather(*(m.ack_token.nak() for m in messages))

        if messages:
            self._adapter._run(nak_all)

    def close(self) -> None:
        inbox, self._inbox = self._inbox, None
        if inbox is None:
            return
        try:
            self._adapter._run(lambda c: inbox.unsubscribe())
        except Exception:  # noqa: BLE001 - the durable consumer stays on the server either way
            pass


def _fetched_to_message(raw) -> Message:
    message = _to_message(_RawView(raw))
    message.delivery_count = raw.metadata.num_delivered
    message.message_id = message.message_id or str(raw.metadata.sequence.stream)
    message.ack_token = raw
    return message


class _RawView:
    """A fetched Msg seen through the fields _to_message reads from a stored message."""

    def __init__(self, raw):
        self.subject, self.data, self.headers = raw.subject, raw.data, raw.headers
        self.seq = raw.metadata.sequence.stream
        self.time = raw.metadata.timestamp


def _without_credentials(url: str) -> str:
    """`url` without a user, password or token in it (what repr() and error texts may show)."""
    parts = urllib.parse.urlsplit(url if "://" in url else f"nats://{url}")
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
