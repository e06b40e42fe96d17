"""Copy dead letters from a broker DLQ into DeadLetter rows: poll, write, commit, and only then acknowledge.

A worker killed between the commit and the ack gets the same messages again; the unique (source, message_id) drops
them, so nothing is lost and nothing is stored twice.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta

from django.conf import settings
from django.db import DataError, IntegrityError, InterfaceError, OperationalError, transaction
from django.utils import timezone

from brokers.base import BrokerError, Capability, DestinationNotFound, Message, Subscription
from console import brokers
from console.backoff import backoff as delay
from console.brokers import kind_supports
from console.live import broadcast
from dlq import advisories, conventions, sns
from dlq import headers as h
from dlq.models import DeadLetter, DeadLetterBody, DeadLetterSource
from formats import ingest as formats

log = logging.getLogger(__name__)

SEARCH_PREFIX = 100_000  # characters of a body kept for full-text search (tsvector has a 1 MB limit)
MESSAGE_ID_MAX = DeadLetter._meta.get_field("message_id").max_length
CHAR_FIELDS = [
    f
    for f in DeadLetter._meta.concrete_fields
    if getattr(f, "max_length", None) and f.get_internal_type() == "CharField"
]
# The database is down or the connection dropped: the worker waits and tries again (nothing of the round is acked).
OUTAGE = (OperationalError, InterfaceError)
# What the database answers a row it will not take (a value out of range, NUL in text, a duplicate).
REFUSED = (DataError, IntegrityError, ValueError)
_subscriptions: dict[int, Subscription] = {}


def subscription_for(source: DeadLetterSource) -> Subscription:
    sub = _subscriptions.get(source.pk)
    if sub is None:
        group = group_name(source)
        adapter = source.adapter()
        redeliver_after = _redeliver_after(source)
        if _advisory_source(source):
            sub = advisories.AdvisorySubscription(adapter, source.destination, group, redeliver_after)
        else:
            # Several ingest processes share the sources by lease (dlq.leases): the holder is the only reader, so a
            # broker with consumer groups lets it take every partition itself rather than join a group whose dead
            # members some brokers never expire.
            sub = adapter.subscribe(source.destination, group, redeliver_after=redeliver_after, exclusive=True)
        _subscriptions[source.pk] = sub
    return sub


def _redeliver_after(source: DeadLetterSource):
    """Seconds a taken, unacked letter stays hidden: the source's own figure under any of the names it was stored
    with before adapters shared one (the adapter refuses a value that is not a number, on the source's row)."""
    c = source.conventions
    return c.get("redeliver_after", c.get("visibility_timeout", c.get("ack_wait", 30)))


def group_name(source: DeadLetterSource) -> str:
    """The consumer group / durable the ingest worker of `source` reads as (the retention check reads its offsets)."""
    return f"switchyard-dlq-{settings.NAMESPACE}-{source.pk}".replace(":", "_")


def open_sources() -> set[int]:
    """The ids of the sources this process has a subscription open on."""
    return set(_subscriptions)


def close_all() -> None:
    while _subscriptions:
        _, sub = _subscriptions.popitem()
        try:
            sub.close()
        except Exception:  # noqa: BLE001 - unacked messages simply come back
            log.warning("closing a DLQ subscription failed", exc_info=True)


def _advisory_source(source: DeadLetterSource) -> bool:
    return kind_supports(source.broker, Capability.DELIVERY_ADVISORIES) and advisories.is_advisory(source.destination)


def message_id(source: DeadLetterSource, m: Message) -> str:
    """The broker's identity of one dead-lettered delivery, stable across redeliveries of the same one: what
    identifies a message follows what the adapter says its messages carry."""
    if kind_supports(source.broker, Capability.POSITIONS):
        return f"{m.partition}:{m.offset}"
    if kind_supports(source.broker, Capability.SEQUENCES):
        if _advisory_source(source):
            return _storable_id(m.message_id)  # "<stream>:<sequence>": one advisory source may cover many streams
        return str(m.offset)  # the DLQ stream's sequence
    if kind_supports(source.broker, Capability.DEAD_LETTER_EXCHANGE):
        # A replayed message keeps its message id; the replay count tells its second death from its first.
        base = m.message_id or hashlib.sha256(m.body + repr(sorted(m.headers.items())).encode()).hexdigest()
        return _storable_id(f"{base}#{h.text(m.headers.get(h.REPLAY_COUNT)) or 0}")
    return _storable_id(m.message_id or hashlib.sha256(m.body).hexdigest())


def _storable_id(value: str | None) -> str:
    """A publisher's message id as the column takes it: as it is when it fits, else a digest of it (cutting it short
    could give two messages one id, and the second would be dropped as a redelivery of the first)."""
    value = value or ""
    if len(value) <= MESSAGE_ID_MAX and "\x00" not in value and _encodable(value):
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def _encodable(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:  # lone surrogates: PostgreSQL text is UTF-8
        return False
    return True


def build(source: DeadLetterSource, m: Message) -> tuple[DeadLetter, bytes | None]:
    """The row for one message, and the body to store outside it when it is large. Never raises: a message whose
    failure facts cannot be read is kept with its body and headers as they came and the problem in parse_error."""
    try:
        return _build(source, m)
    except Exception as exc:  # noqa: BLE001 - one message's content must not stop the batch
        log.warning("dead letter from %s: its facts could not be read (%s); stored as it came", source, exc)
        return _raw_row(source, m, f"the failure facts could not be read: {_describe(exc)}")


def _build(source: DeadLetterSource, m: Message) -> tuple[DeadLetter, bytes | None]:
    problems = [m.parse_error] if m.parse_error else []
    # An SNS envelope: its message attributes are headers, and it names its topic and subscription (dlq/sns.py).
    m, envelope_origin, envelope_convention = sns.read_envelope(source, m)
    try:
        facts = h.parse(m.headers, source.conventions)
    except Exception as exc:  # noqa: BLE001 - the message is stored with what is known, the problem named
        facts = h.FailureFacts()
        problems.append(f"the failure headers could not be read: {_describe(exc)}")
    recognised = _recognise(source, m, problems)
    now = timezone.now()
    # What a recognised convention says wins over the generic header names (which may name a wrapper exception).
    for name, value in recognised.items():
        if name == "delivery_count":
            facts.attempts = value
        elif hasattr(facts, name):
            setattr(facts, name, value)
    origin = facts.origin or source.origin or envelope_origin or source.default_origin()
    large = len(m.body) > settings.DLQ_INLINE_BODY_MAX
    attempts = facts.attempts if facts.attempts is not None else m.delivery_count
    row = DeadLetter(
        source=source,
        origin=origin,
        message_id=message_id(source, m),
        partition=_bounded(m.partition, 2**31),
        offset=_bounded(m.offset, 2**63),
        key=m.key,
        headers=h.encode_headers(m.headers),
        body=None if large else m.body,
        body_size=len(m.body),
        body_text=h.text(m.body, SEARCH_PREFIX),
        content_type=facts.content_type,
        message_type=facts.message_type,
        exception_type=facts.exception_type,
        exception_message=facts.exception_message,
        stacktrace=facts.stacktrace,
        reason=facts.reason,
        correlation_id=facts.correlation_id,
        parse_error=_clean("; ".join(problems)),
        first_failure_at=facts.failed_at or m.timestamp or now,
        last_failure_at=m.timestamp or facts.failed_at or now,
        delivery_count=_bounded(attempts, 2**31),
        fingerprint="",
        replay_of_id=_bounded(facts.replay_of, 2**63, minimum=1),
        origin_partition=_bounded(recognised.get("origin_partition"), 2**31),
        origin_offset=_bounded(recognised.get("origin_offset"), 2**63),
        failed_in=recognised.get("failed_in", ""),
        convention=recognised.get("convention", "") or envelope_convention,
    )
    formats.enrich(row, source, m)  # decoded body, its search text, type and correlation (formats/, ADR 0051)
    _fit(row)
    row.fingerprint = row.fingerprint_value()
    return row, m.body if large else None


def _recognise(source: DeadLetterSource, m: Message, problems: list[str]) -> dict:
    """The fields a framework's convention (or the source's mapping) gives, already merged into what _build reads
    from `facts`' names; problems met are added to `problems`. Never raises."""
    try:
        found, trouble = conventions.recognise(m.headers, m.body, source.destination, source.dead_letter_mapping())
    except Exception as exc:  # noqa: BLE001 - recognise() means never to raise; if it does, the letter says so
        problems.append(f"the framework conventions could not be read: {_describe(exc)}")
        return {}
    problems.extend(trouble)
    if found is None:
        return {}
    return {"convention": found.convention, **found.filled()}


def _raw_row(source: DeadLetterSource, m: Message, problem: str) -> tuple[DeadLetter, bytes | None]:
    """The row for a message whose facts could not be read: its body, key and headers as they came, the problem."""
    now = timezone.now()
    large = len(m.body) > settings.DLQ_INLINE_BODY_MAX
    try:
        origin = source.default_origin()
    except Exception:  # noqa: BLE001 - unknown then, like a message without origin headers on an unnamed DLQ
        origin = ""
    try:
        headers = h.encode_headers(m.headers)
    except Exception as exc:  # noqa: BLE001 - then the problem says so, and the body is still kept
        headers, problem = {}, f"{problem}; the headers could not be stored either: {_describe(exc)}"
    try:
        mid = message_id(source, m)
    except Exception:  # noqa: BLE001 - a digest of the body identifies it across redeliveries all the same
        mid = "sha256:" + hashlib.sha256(m.body).hexdigest()
    row = DeadLetter(
        source=source,
        origin=origin,
        message_id=mid,
        key=m.key if isinstance(m.key, bytes) else None,
        headers=headers,
        body=None if large else m.body,
        body_size=len(m.body),
        body_text=h.text(m.body, SEARCH_PREFIX),
        parse_error=_clean("; ".join(filter(None, [m.parse_error, problem]))),
        first_failure_at=now,
        last_failure_at=now,
        fingerprint=DeadLetter.compute_fingerprint("", "", origin),
    )
    _fit(row)
    return row, m.body if large else None


def _bounded(value, limit: int, minimum: int | None = None) -> int | None:
    """An integer the column can hold, else None (publishers write these headers; nonsense is unknown, not fatal)."""
    if value is None or isinstance(value, bool) or not isinstance(value, int):
        return None
    low = -limit if minimum is None else minimum
    return value if low <= value < limit else None


def _fit(row: DeadLetter) -> None:
    """Cut every text that has a length limit to it, so no header's length can make the INSERT fail."""
    for field in CHAR_FIELDS:
        value = getattr(row, field.attname)
        if isinstance(value, str) and len(value) > field.max_length:
            setattr(row, field.attname, value[: field.max_length])


def _clean(value: str) -> str:
    """Text PostgreSQL takes (no NUL, no lone surrogate), of a length a page can show."""
    return h.text(value.encode("utf-8", "surrogatepass"), 5_000)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


def store(source: DeadLetterSource, messages: list[Message]) -> list[DeadLetter]:
    """Insert the new ones in one transaction; returns the rows created (already-stored deliveries are skipped).

    A row the database refuses (which build() means never to make) does not stop the others: the batch is then
    inserted one row at a time, and a refused row is stored again as it came (see _raw_row).
    """
    built: dict[str, tuple[DeadLetter, bytes | None, Message]] = {}
    for m in messages:
        row, large = build(source, m)
        built.setdefault(row.message_id, (row, large, m))
    with transaction.atomic():
        existing = set(
            DeadLetter.objects.filter(source=source, message_id__in=list(built)).values_list("message_id", flat=True)
        )
        fresh = [entry for mid, entry in built.items() if mid not in existing]
        parents = {row.replay_of_id for row, _, _ in fresh if row.replay_of_id}
        known = set(DeadLetter.objects.filter(pk__in=parents).values_list("pk", flat=True)) if parents else set()
        for row, _, _ in fresh:
            if row.replay_of_id not in known:
                row.replay_of_id = None
        try:
            with transaction.atomic():
                created = _insert([(row, large) for row, large, _ in fresh])
        except REFUSED as exc:
            log.warning("dead letters from %s: a row was refused (%s); inserting them one by one", source, exc)
            created = [row for entry in fresh if (row := _insert_one(source, *entry)) is not None]
        fields = {"last_ingest_at": timezone.now()}
        seen = [row.convention for row in created if row.convention]
        if seen and seen[-1] != source.convention:
            # The sources page shows the convention its latest letters follow.
            fields["convention"] = source.convention = seen[-1]
        DeadLetterSource.objects.filter(pk=source.pk).update(**fields)
        if created:
            ids = [row.pk for row in created]
            transaction.on_commit(lambda: _announce(ids))
    return created


def _insert(rows: list[tuple[DeadLetter, bytes | None]]) -> list[DeadLetter]:
    created = DeadLetter.objects.bulk_create([row for row, _ in rows])
    DeadLetterBody.objects.bulk_create(
        [DeadLetterBody(dead_letter=row, data=large) for row, large in rows if large is not None]
    )
    return created


def _insert_one(source: DeadLetterSource, row: DeadLetter, large: bytes | None, m: Message) -> DeadLetter | None:
    try:
        with transaction.atomic():
            return _insert([(row, large)])[0]
    except REFUSED as exc:
        if DeadLetter.objects.filter(source=source, message_id=row.message_id).exists():
            return None  # another worker stored it meanwhile
        log.warning("dead letter %s from %s refused (%s); stored as it came", row.message_id, source, exc)
        raw, raw_large = _raw_row(source, m, f"the database refused the parsed row: {_describe(exc)}")
        with transaction.atomic():
            return _insert([(raw, raw_large)])[0]


def _announce(ids: list[int]) -> None:
    broadcast("dlq", {"type": "dead_letters", "ids": ids})
    broadcast("dashboard", {"type": "dashboard", "tile": "dlq"})


def run_once(source: DeadLetterSource, max_messages: int = 100, timeout: float = 1.0) -> bool:
    """One round for one source. True if it found messages (so the caller should come back at once).

    Whatever fails — the broker, the subscription, one message, the ack — is recorded on this source (its error, a
    backoff before its next round, and whether its DLQ is gone) and ends only this round; a database outage is
    raised for the caller to wait out. Messages are acknowledged only after the commit that stored them.
    """
    try:
        sub = subscription_for(source)
        messages = sub.poll(max_messages, timeout)
    except Exception as exc:  # noqa: BLE001 - a failure of one source is recorded on it, never raised to the loop
        _failed(source, exc)
        return False
    if not messages:
        _recovered(source)
        return False
    try:
        store(source, messages)
    except OUTAGE:
        drop(source)  # what was polled and not stored goes back to the broker, to be read again
        raise
    except Exception as exc:  # noqa: BLE001 - recorded on the source; the messages come back and are tried again
        _failed(source, exc)
        return False
    try:
        # Only now, after the commit: a crash before this line means redelivery, which store() deduplicates.
        sub.ack(messages)
    except Exception as exc:  # noqa: BLE001 - stored already; the redelivery will be dropped as a duplicate
        _failed(source, exc)
        return False
    _recovered(source)
    return True


def drop(source: DeadLetterSource) -> None:
    """Close and forget the subscription of `source`: whatever it polled and did not ack goes back to the broker
    (a Kafka consumer would otherwise read on past it, and a later ack would commit beyond it)."""
    sub = _subscriptions.pop(source.pk, None)
    if sub is not None:
        try:
            sub.close()
        except Exception:  # noqa: BLE001 - unacked messages come back all the same
            log.debug("closing the subscription of %s failed", source, exc_info=True)


def backoff(failures: int) -> timedelta:
    """How long a failing source rests: full jitter, so sources of one broken connection spread out."""
    base, cap = settings.DLQ_SOURCE_BACKOFF_BASE_SECONDS, settings.DLQ_SOURCE_BACKOFF_MAX_SECONDS
    return timedelta(seconds=delay(failures, base, cap, "full"))


def _failed(source: DeadLetterSource, exc: Exception) -> None:
    drop(source)
    gone = isinstance(exc, DestinationNotFound)
    error = _describe(exc) if not isinstance(exc, BrokerError | brokers.NotConfigured) else str(exc)[:2000]
    failures = source.consecutive_failures + 1
    now = timezone.now()
    delay = backoff(failures)
    fields = {"last_error": error, "consecutive_failures": failures, "next_attempt_at": now + delay}
    if gone and source.gone_since is None:
        fields["gone_since"] = now
        # Once when it goes (and once when it comes back, in _recovered); the rounds in between only count.
        log.warning("ingest from %s: the DLQ is gone (%s); polling it with a growing backoff", source, error)
    elif gone:
        log.debug("ingest from %s: still gone (%d failures)", source, failures)
    elif error != source.last_error:
        # A new error is worth a line (with its traceback when it is not the broker's); the same again is not.
        unexpected = not isinstance(exc, BrokerError | brokers.NotConfigured)
        log.warning(
            "ingest from %s failed: %s; next attempt in %.1f s",
            source,
            error,
            delay.total_seconds(),
            exc_info=exc if unexpected else None,
        )
    else:
        log.debug("ingest from %s failed again (%d in a row): %s", source, failures, error)
    DeadLetterSource.objects.filter(pk=source.pk).update(**fields)
    for name, value in fields.items():
        setattr(source, name, value)


def _recovered(source: DeadLetterSource) -> None:
    """A poll worked: forget what failures recorded (one UPDATE, and only when there is something to forget)."""
    if not (source.last_error or source.consecutive_failures or source.gone_since or source.next_attempt_at):
        return
    if source.gone_since is not None:
        log.warning("ingest from %s: the DLQ is back (gone since %s)", source, source.gone_since.isoformat())
    elif source.consecutive_failures:
        log.info("ingest from %s works again after %d failures", source, source.consecutive_failures)
    fields = {"last_error": "", "consecutive_failures": 0, "next_attempt_at": None, "gone_since": None}
    DeadLetterSource.objects.filter(pk=source.pk).update(**fields)
    for name, value in fields.items():
        setattr(source, name, value)
