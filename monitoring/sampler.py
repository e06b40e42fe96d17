"""The sampler: one pass over every configured broker (plus Celery and the outbox), run by beat.

sample_all() discovers targets, stores one Sample per target (and one per Kafka partition), re-evaluates statuses
over the window and broadcasts what changed. A broker that fails marks its targets ERR instead of failing the pass.
"""

import functools
import json
import logging
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.apps import apps
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from brokers.base import BrokerError, Capability, DestinationNotFound
from console import brokers
from console.live import broadcast
from monitoring.models import RANK, ConsumerTarget, PartitionState, Sample, StatusTally
from monitoring.partitions import (
    F_COMMITTED,
    F_END,
    F_FIRST,
    F_PRODUCED,
    F_PROGRESSED,
    F_REWOUND,
    F_STORED,
    F_ZERO,
    fingerprint,
    judge_unchanged,
    partition_status,
    summarize,
)
from monitoring.status import Point, estimate_produce_time, evaluate

log = logging.getLogger(__name__)
Kind = ConsumerTarget.Kind

SAMPLE_COLUMNS = (
    "time",
    "target_id",
    "topic",
    "partition",
    "lag",
    "lag_seconds",
    "committed",
    "end_offset",
    "members",
    "depth",
    "in_flight",
    "delayed",
    "redelivered",
    "oldest_age_seconds",
    "downsampled",
)


@dataclass
class Observation:
    """What one target looked like now; `partitions` are (topic, partition, committed, end) for Kafka groups."""

    broker: str
    kind: str
    name: str
    lag: int | None = None
    members: int | None = None
    progress: int | None = None
    details: dict = field(default_factory=dict)
    partitions: list[tuple[str, int, int | None, int]] = field(default_factory=list)
    depth: dict = field(default_factory=dict)  # depth / in_flight / delayed / redelivered / oldest_age_seconds
    connection: str = ""  # the connection's name; "" for the console's own backlogs (celery, outbox, dlq)

    @property
    def source(self) -> str:
        """The key its errors are filed under: the connection key, or the pseudo-broker's name."""
        return f"{self.broker}:{self.connection}" if self.connection else self.broker


def observe_kafka(adapter, connection: str = "default") -> list[Observation]:
    """Committed offsets of every group requested at once, then ONE ListOffsets for the union of their partitions:
    groups sharing a topic (the usual case) would otherwise ask for the same end offsets again and again."""
    groups = adapter.consumer_groups()
    committed = adapter.committed_offsets_many([g.name for g in groups])
    ends = adapter.end_offsets({tp for offsets in committed.values() for tp in offsets})
    found = []
    for group in groups:
        parts = [(t, p, c, ends[(t, p)]) for (t, p), c in sorted(committed[group.name].items()) if (t, p) in ends]
        found.append(
            Observation(
                adapter.name,
                Kind.GROUP,
                group.name,
                lag=sum(max(0, end - (c or 0)) for _, _, c, end in parts),
                members=group.members,
                progress=sum(c or 0 for _, _, c, _ in parts),
                details={"state": group.state, "partitions": len(parts), "topics": sorted({p[0] for p in parts})},
                partitions=parts,
                connection=connection,
            )
        )
    return found


def observe_queues(adapter, broker: str, connection: str = "default", known: Iterable[str] = ()) -> list[Observation]:
    """The queues the adapter lists, and those the console knows by name (`known`): without the management API
    AMQP cannot list queues, yet a passive declare tells a named one's depth and consumers."""
    names = {d.name for d in adapter.list_destinations() if d.kind == "queue"} | set(known)
    if adapter.supports(Capability.DEAD_LETTER_EXCHANGE):
        names |= set(settings.MONITORING_RABBITMQ_QUEUES)
    found = []
    for name, d in sorted(adapter.queue_depths(sorted(names)).items()):
        # SQS does not say who consumes; messages in flight are the sign that someone does.
        attached = d.consumers if d.consumers is not None else d.in_flight
        details = {
            "ready": d.ready,
            "in_flight": d.in_flight,
            "delayed": d.delayed,
            "consumers": d.consumers,
            "publish_rate": d.publish_rate,
            "deliver_rate": d.deliver_rate,
            "oldest_age_seconds": d.oldest_age_seconds,
        }
        depth = {
            "depth": d.ready,
            "in_flight": d.in_flight,
            "delayed": d.delayed,
            "oldest_age_seconds": d.oldest_age_seconds,
        }
        found.append(Observation(broker, Kind.QUEUE, name, d.ready, attached, None, details, [], depth, connection))
    return found


def observe_nats(adapter, connection: str = "default") -> list[Observation]:
    found = []
    for stream in adapter.list_destinations():
        for c in adapter.consumer_info(stream.name):
            details = {"pending": c.pending, "ack_pending": c.ack_pending, "redelivered": c.redelivered}
            depth = {"depth": c.pending, "in_flight": c.ack_pending, "redelivered": c.redelivered}
            # Waiting pull requests or unacked deliveries mean a client is attached.
            found.append(
                Observation(
                    "nats",
                    Kind.CONSUMER,
                    f"{c.stream}/{c.name}",
                    lag=c.pending + c.ack_pending,
                    members=c.waiting + c.ack_pending,
                    details=details,
                    depth=depth,
                    connection=connection,
                )
            )
    return found


def observe_topics(adapter, broker: str, connection: str = "default") -> list[Observation]:
    """SNS topics and their subscriptions. A subscription's backlog is its dead-letter queue: the deliveries SNS gave
    up on. Its depth is the lag; the age of a message peeked from it (SentTimestamp: when SNS moved it there) is the
    lag in seconds, a lower bound as the SQS API has no oldest-message age. A topic sums its subscriptions' DLQs."""
    now = time.time()
    by_topic: dict[str, list[Observation]] = {name: [] for name in adapter.topics()}
    depths: dict[str, dict | None] = {}
    for sub in adapter.topic_subscriptions():
        dlq = sub.dead_letter_queue
        if dlq and dlq not in depths:
            depths[dlq] = _dlq_depth(adapter, dlq, now)
        depth = depths.get(dlq) if dlq else None
        details = {
            "topic": sub.topic,
            "protocol": sub.protocol,
            "endpoint": sub.endpoint,
            "raw": sub.raw,
            "dead_letter_queue": dlq,
            "dlq_missing": bool(dlq) and depth is None,
            **({"ready": depth["depth"], "in_flight": depth["in_flight"]} if depth else {}),
            "oldest_age_seconds": depth["oldest_age_seconds"] if depth else None,
        }
        by_topic.setdefault(sub.topic, []).append(
            Observation(
                broker,
                Kind.SUBSCRIPTION,
                sub.destination,
                lag=depth["depth"] if depth else None,
                members=depth["in_flight"] if depth else None,
                details=details,
                depth=depth or {},
                connection=connection,
            )
        )
    found = []
    for topic, subs in sorted(by_topic.items()):
        lags = [o.lag for o in subs if o.lag is not None]
        ages = [o.depth["oldest_age_seconds"] for o in subs if o.depth.get("oldest_age_seconds") is not None]
        details = {
            "subscriptions": len(subs),
            "with_dlq": sum(1 for o in subs if o.details["dead_letter_queue"]),
            "fifo": topic.endswith(".fifo"),
            "oldest_age_seconds": max(ages) if ages else None,
        }
        depth = {"depth": sum(lags), "oldest_age_seconds": details["oldest_age_seconds"]} if lags else {}
        found.append(
            Observation(
                broker,
                Kind.TOPIC,
                adapter.topic_destination(topic),
                lag=sum(lags) if lags else None,
                members=len(subs),
                details=details,
                depth=depth,
                connection=connection,
            )
        )
        found += subs
    return found


def _dlq_depth(adapter, queue: str, now: float) -> dict | None:
    """Depth of a subscription's DLQ and the age of a message in it; None when the queue no longer exists."""
    try:
        d = adapter.queue_depth(queue)
        age = None
        if d.ready:
            peeked = [m.timestamp for m in adapter.read(queue, 1, timeout=1) if m.timestamp]
            age = max(0.0, now - min(peeked).timestamp()) if peeked else None
    except DestinationNotFound:
        return None
    return {"depth": d.ready, "in_flight": d.in_flight, "delayed": d.delayed, "oldest_age_seconds": age}


KNOWN_OUTBOX_SECONDS = 300  # how long the outbox destinations found are trusted before they are looked up again
_known_outbox: tuple[float, dict[str, set[str]]] = (0.0, {})


def known_queues() -> dict[str, set[str]]:
    """Queue names the console knows, per connection key ("rabbitmq:default"): its dead-letter sources and their
    origins (where a replay goes), and the queues its outbox publishes to on the default exchange.

    The outbox part reads the rows still waiting and those published in the last minutes (both indexed), and is
    kept KNOWN_OUTBOX_SECONDS: a destination is a deployment's constant, not something to look up every pass.
    """
    global _known_outbox
    known: dict[str, set[str]] = {}
    if apps.is_installed("dlq"):
        from dlq.models import DeadLetterSource

        for source in DeadLetterSource.objects.filter(enabled=True):
            known.setdefault(source.connection_key, set()).update({source.destination, source.default_origin()} - {""})
    if apps.is_installed("outbox"):
        checked, outbox = _known_outbox
        if time.monotonic() - checked > KNOWN_OUTBOX_SECONDS:
            outbox = _outbox_queues()
            _known_outbox = (time.monotonic(), outbox)
        for key, names in outbox.items():
            known.setdefault(key, set()).update(names)
    return known


def _outbox_queues() -> dict[str, set[str]]:
    from outbox.models import OutboxEvent, split_destination

    since = timezone.now() - timedelta(seconds=KNOWN_OUTBOX_SECONDS)
    rows = OutboxEvent.objects.filter(destination__startswith="rabbitmq://")
    waiting = rows.filter(status__in=["pending", "failed"])
    recent = rows.filter(status="published", published_at__gte=since)
    uris = {uri for q in (waiting, recent) for uri in q.values_list("destination", flat=True).distinct()}
    found: dict[str, set[str]] = {}
    for uri in uris:
        try:
            key, target = split_destination(uri)
        except ValueError:
            continue
        exchange, _, queue = target.partition("/")
        if exchange or not queue:
            continue  # a named exchange routes by bindings AMQP cannot read: its queues are not known by name
        kind, _, name = key.partition(":")
        found.setdefault(f"{kind}:{name or brokers.default_name(kind)}", set()).add(queue)
    return found


def observe_celery() -> list[Observation]:
    """The console's own Celery queue: kombu's Redis transport keeps it as a list named after the queue."""
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        queue = settings.CELERY_TASK_DEFAULT_QUEUE
        depth = client.llen(queue)
    finally:
        client.close()
    return [Observation("celery", Kind.QUEUE, queue, depth, None, None, {"ready": depth}, [], {"depth": depth})]


def observe_outbox() -> list[Observation]:
    """The outbox backlog, if the outbox app is installed: pending count and the age of the oldest pending event."""
    if not apps.is_installed("outbox"):
        return []
    try:
        from django.db.models import Count, Min

        from outbox.models import OutboxEvent
    except ImportError:
        return []
    row = OutboxEvent.objects.filter(status="pending").aggregate(n=Count("id"), oldest=Min("created_at"))
    age = (timezone.now() - row["oldest"]).total_seconds() if row["oldest"] else 0.0
    details = {"pending": row["n"], "oldest_age_seconds": round(age, 1)}
    return [
        Observation(
            "outbox",
            Kind.BACKLOG,
            "outbox",
            row["n"],
            None,
            None,
            details,
            [],
            {"depth": row["n"], "oldest_age_seconds": age},
        )
    ]


def observe_dlq() -> list[Observation]:
    """Dead letters kept per DLQ source, if the dlq app is installed: the count still new (the chart's line) and the
    total. Counted with one grouped query; the dead-letter table is indexed on status and source."""
    if not apps.is_installed("dlq"):
        return []
    try:
        from django.db.models import Count, Q

        from dlq.models import DeadLetter, DeadLetterSource
    except ImportError:
        return []
    counts = {
        row["source"]: row
        for row in DeadLetter.objects.values("source").annotate(
            total=Count("id"), new=Count("id", filter=Q(status=DeadLetter.Status.NEW))
        )
    }
    found = []
    for source in DeadLetterSource.objects.filter(enabled=True).order_by("pk"):
        row = counts.get(source.pk, {"total": 0, "new": 0})
        details = {"new": row["new"], "total": row["total"], "source": str(source)}
        name = str(source)
        found.append(
            Observation("dlq", Kind.BACKLOG, name, row["new"], None, None, details, [], {"depth": row["total"]})
        )
    return found


def sample_all(now: datetime | None = None) -> dict:
    """One sampling pass. Returns {"targets": n, "partitions": n, "errors": {broker: message}, "seconds": s}."""
    started = time.perf_counter()
    now = now or timezone.now()
    observations: list[Observation] = []
    errors: dict[str, str] = {}
    sources = {conn.key: conn for conn in brokers.connections()}
    try:
        known = known_queues()  # here: the threads below get no database connection of their own
    except Exception as e:  # noqa: BLE001 - the listed queues are still worth sampling
        log.warning("known queues: %s", e)
        known = {}

    def run(name):
        if name == "celery":
            return observe_celery()
        conn = sources[name]
        adapter = conn.adapter()  # NotConfigured (settings its adapter refuses) is this connection's error alone
        found = []
        # What to watch follows what the adapter can do, not which broker it is.
        if adapter.supports(Capability.CONSUMER_GROUPS):
            found += observe_kafka(adapter, conn.name)
        if adapter.supports(Capability.QUEUE_DEPTH):
            found += observe_queues(adapter, conn.kind, conn.name, known.get(conn.key, ()))
        if adapter.supports(Capability.STREAM_CONSUMERS):
            found += observe_nats(adapter, conn.name)
        if adapter.supports(Capability.TOPIC_SUBSCRIPTIONS):
            try:
                found += observe_topics(adapter, conn.kind, conn.name)
            except BrokerError as e:
                # SNS refused (an emulator without it, such as ElasticMQ; credentials allowed SQS only): the
                # connection's queues are still sampled.
                log.info("sampling SNS topics on %s failed: %s", conn, e)
        for o in found:
            o.broker = conn.kind
        return found

    # Each connection in its own thread: a slow or failing one holds up only its own targets.
    names = [*sources, "celery"]
    with ThreadPoolExecutor(max_workers=min(16, len(names))) as pool:
        futures = {name: pool.submit(run, name) for name in names}
        for name, future in futures.items():
            try:
                observations += future.result()
            except Exception as e:  # noqa: BLE001 - one broker down must not stop the others being sampled
                log.warning("sampling %s failed: %s", name, e)
                errors[name] = f"{type(e).__name__}: {e}"[:1000]
    # In this thread: they use the database connection.
    for name, observe in (("outbox", observe_outbox), ("dlq", observe_dlq)):
        try:
            observations += observe()
        except Exception as e:  # noqa: BLE001
            errors[name] = f"{type(e).__name__}: {e}"[:1000]
    changed, created = store(observations, errors, now)
    tally(now)
    partitions = sum(len(o.partitions) for o in observations)
    if changed or created:
        broadcast("consumers", {"type": "consumers", "targets": changed, "new": created})
        broadcast("dashboard", {"type": "dashboard", "tile": "consumers"})
    try:
        from monitoring.alerts import evaluate_all

        evaluate_all(now)
    except Exception:  # noqa: BLE001 - alerting trouble must not lose the samples
        log.exception("alert evaluation failed")
    return {
        "targets": len(observations),
        "partitions": partitions,
        "errors": errors,
        "seconds": round(time.perf_counter() - started, 3),
    }


NULL = "\\N"
# The queue columns a partition row leaves empty, and `downsampled` false, as COPY text.
PARTITION_TAIL = "\t".join([NULL] * 6 + ["f"]) + "\n"


@functools.lru_cache(maxsize=8)
def _iso(when: datetime) -> str:
    return when.isoformat()  # the same few pass times 50,000 times over


def _partition_row(when, target_id, topic, partition, committed, end, seconds) -> str:
    """One partition row as a line of COPY text: a big first pass has 50,000 of them, and formatting them here costs
    a fraction of psycopg's per-value write_row."""
    lag = max(0, end - (committed or 0))
    if "\\" in topic or "\t" in topic or "\n" in topic or "\r" in topic:  # Kafka forbids them; escaped all the same
        topic = topic.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return (
        f"{_iso(when)}\t{target_id}\t{topic}\t{partition}\t{lag}\t{NULL if seconds is None else seconds}\t"
        f"{NULL if committed is None else committed}\t{end}\t{PARTITION_TAIL}"
    )


def _track_partitions(o: Observation, target, state: dict, seen: float | None, produce_times, now, rows: list):
    """Advance one group's partition state by this pass; append the partition rows worth storing to `rows`.

    `seen` is when the previous pass saw the group (every entry in `state` was seen then). A row is stored when the
    partition's offsets changed since the last stored row, or every MONITORING_PARTITION_HEARTBEAT_SECONDS. When they
    changed, the previous figures are stored too at the time they were last seen (if not stored then): the
    interpolation of ADR 0040 needs the last time an end offset was seen, not only the first. An entry only changes
    when something about its partition did, so a steady group's state is not rewritten.
    Returns (new state, whether it changed, worst lag seconds, worst partition (status, reason)).
    """
    ts = now.timestamp()
    heartbeat = settings.MONITORING_PARTITION_HEARTBEAT_SECONDS
    window = settings.MONITORING_STATUS_WINDOW_SECONDS
    if seen is None or seen > ts:
        state = {}  # first pass, or a pass dated before the last one (tests replay history): start afresh
    new_state, dirty, worst_seconds, worst_status = {}, len(state) != len(o.partitions), None, ("OK", "")
    for topic, partition, committed, end in o.partitions:
        key = f"{topic}/{partition}"
        lag = max(0, end - (committed or 0))
        prev = state.get(key)
        if prev is None:
            entry = [committed, end, None, None, ts, None, None, ts]
        else:
            entry = list(prev)
            if (committed, end) != (prev[F_COMMITTED], prev[F_END]):
                if committed != prev[F_COMMITTED]:
                    entry[F_PROGRESSED], entry[F_PRODUCED] = ts, None
                    if committed is not None and prev[F_COMMITTED] is not None and committed < prev[F_COMMITTED]:
                        entry[F_REWOUND] = ts
                if prev[F_END] - (prev[F_COMMITTED] or 0) <= 0 < lag:
                    entry[F_ZERO] = seen  # the last time it had no lag
                if prev[F_STORED] is not None and seen > prev[F_STORED]:
                    when = datetime.fromtimestamp(seen, UTC)
                    rows.append(_partition_row(when, target.pk, topic, partition, prev[F_COMMITTED], prev[F_END], None))
                entry[F_COMMITTED], entry[F_END], entry[F_STORED] = committed, end, None
        if lag == 0:
            seconds = 0.0
        else:
            if entry[F_PRODUCED] is None:
                entry[F_PRODUCED] = produce_times.get((target.pk, topic, partition))
            seconds = None if entry[F_PRODUCED] is None else max(0.0, ts - entry[F_PRODUCED])
        if seconds is not None:
            worst_seconds = max(worst_seconds or 0.0, seconds)
        if entry[F_STORED] is None or ts - entry[F_STORED] >= heartbeat:
            rows.append(_partition_row(now, target.pk, topic, partition, committed, end, seconds))
            entry[F_STORED] = ts
        status = partition_status(entry, o.members, ts, window)
        if RANK[status[0]] > RANK[worst_status[0]]:
            worst_status = (status[0], f"{topic}[{partition}]: {status[1]}")
        dirty = dirty or entry != prev
        new_state[key] = entry
    return new_state, dirty, worst_seconds, worst_status


def store(observations: list[Observation], errors: dict[str, str], now: datetime) -> tuple[list[int], list[int]]:
    """Write the samples, update each target's status and figures; return (ids of targets whose status or figures
    changed, ids of targets first seen in this pass) for the live page."""
    window = settings.MONITORING_STATUS_WINDOW_SECONDS
    existing = {(t.broker, t.connection, t.name): t for t in ConsumerTarget.objects.all()}
    new = [
        ConsumerTarget(broker=o.broker, connection=o.connection, kind=o.kind, name=o.name)
        for o in observations
        if (o.broker, o.connection, o.name) not in existing
    ]
    if new:
        ConsumerTarget.objects.bulk_create(new, ignore_conflicts=True)
        before = set(existing)
        existing = {(t.broker, t.connection, t.name): t for t in ConsumerTarget.objects.all()}
        created = [t.pk for key, t in existing.items() if key not in before]
    else:
        created = []
    targets = {(o.broker, o.connection, o.name): existing[(o.broker, o.connection, o.name)] for o in observations}
    grouped = [o for o in observations if o.partitions]
    ts = now.timestamp()
    # The partitions JSON is what costs (50 groups x 1,000 partitions is most of a pass): read the small fields
    # first and load it only for the groups whose offsets changed since the last pass (ADR 0042).
    states = {
        s.target_id: s
        for s in PartitionState.objects.filter(
            target_id__in=[targets[(o.broker, o.connection, o.name)].pk for o in grouped]
        ).defer("partitions")
    }
    fingerprints = {targets[(o.broker, o.connection, o.name)].pk: fingerprint(o.partitions) for o in grouped}
    unchanged = {pk for pk, fp in fingerprints.items() if _unchanged(states.get(pk), fp, ts)}
    moved = [o for o in grouped if targets[(o.broker, o.connection, o.name)].pk not in unchanged]
    known_partitions = dict(
        PartitionState.objects.filter(
            target_id__in=[targets[(o.broker, o.connection, o.name)].pk for o in moved]
        ).values_list("target_id", "partitions")
    )

    # Lag in seconds per partition, interpolated from earlier samples of the end offset (ADR 0040); only for the
    # lagging partitions whose estimate is not already known from an earlier pass.
    # A group first seen in this pass has no earlier samples to interpolate from: asking for its (usually many)
    # lagging partitions is the most expensive query of a first pass and finds nothing.
    fresh = set(created)
    # When each moved group's continuous history began (ADR 0042): this pass for a new group, carried otherwise,
    # unknown once a pass dated before the last one reset the state.
    borns: dict[int, float | None] = {}
    for o in moved:
        pk, known = (
            targets[(o.broker, o.connection, o.name)].pk,
            states.get(targets[(o.broker, o.connection, o.name)].pk),
        )
        if pk in fresh:
            borns[pk] = ts
        elif known is not None and known.seen_at is not None and known.seen_at <= ts:
            borns[pk] = (known.summary or {}).get("born")
    produce_times = _produce_times(
        [o for o in moved if targets[(o.broker, o.connection, o.name)].pk not in fresh],
        targets,
        known_partitions,
        now,
        borns,
    )
    rows: list = []
    group_seconds: dict[int, float | None] = {}
    worst: dict[int, tuple[str, str]] = {}
    new_states, steady = [], []
    for o in observations:
        target = targets[(o.broker, o.connection, o.name)]
        worst_seconds = o.depth.get("oldest_age_seconds")
        if o.partitions and target.pk in unchanged:
            worst_seconds, worst[target.pk] = judge_unchanged(states[target.pk].summary, o.members, ts, window)
            steady.append(target.pk)
        elif o.partitions:
            known = states.get(target.pk)
            state, dirty, worst_seconds, worst[target.pk] = _track_partitions(
                o,
                target,
                known_partitions.get(target.pk, {}),
                known.seen_at if known else None,
                produce_times,
                now,
                rows,
            )
            fp = fingerprints[target.pk]
            if dirty or known is None or known.fingerprint != fp:
                new_states.append(
                    PartitionState(
                        target=target,
                        partitions=state,
                        seen_at=ts,
                        fingerprint=fp,
                        summary=summarize(state, borns.get(target.pk)),
                    )
                )
            else:
                steady.append(target.pk)
        group_seconds[target.pk] = worst_seconds if o.lag else (0.0 if o.lag == 0 else None)
        d = o.depth
        rows.append(
            (
                now,
                target.pk,
                "",
                None,
                o.lag,
                group_seconds[target.pk],
                o.progress,
                sum(p[3] for p in o.partitions) if o.partitions else None,
                o.members,
                d.get("depth"),
                d.get("in_flight"),
                d.get("delayed"),
                d.get("redelivered"),
                d.get("oldest_age_seconds"),
                False,
            )
        )
    with transaction.atomic():
        with connection.cursor() as cursor:
            # Samples are observations we can take again: a crash may lose the last pass, never corrupt it, and not
            # waiting for the WAL flush saves most of the commit on a big pass.
            cursor.execute("SET LOCAL synchronous_commit = off")
        _copy_samples(rows)
        _upsert_states(new_states)
        PartitionState.objects.filter(target_id__in=steady).update(seen_at=now.timestamp())
        history = _window_points([t.pk for t in targets.values()], now, window)
        changed, dirty = [], []
        for o in observations:
            target = targets[(o.broker, o.connection, o.name)]
            if o.broker == "dlq":
                # A count of dead letters, not a backlog anyone drains: the dlq_growth alert rule judges it.
                status, reason = "OK", "dead letters kept"
            elif o.kind == Kind.TOPIC:
                # Its subscriptions' rows judge their own dead-letter queues; the topic only sums them.
                status, reason = "OK", f"{o.members} subscription(s), {o.details['with_dlq']} with a dead-letter queue"
            else:
                status, reason = evaluate(history.get(target.pk, []), now.timestamp(), window)
            if target.pk in worst and RANK[worst[target.pk][0]] > RANK[status]:
                status, reason = worst[target.pk]
            before = (target.status, target.lag, target.members, target.gone, target.error)
            fields = (target.status, target.reason, target.lag, target.lag_seconds, target.members, target.details)
            if status != target.status:
                target.status_since = now
            target.status, target.reason = status, reason
            target.lag, target.lag_seconds, target.members = o.lag, group_seconds[target.pk], o.members
            target.details, target.error, target.gone, target.last_sampled_at = o.details, "", False, now
            if before != (target.status, target.lag, target.members, target.gone, target.error):
                changed.append(target.pk)
            if fields != (target.status, target.reason, target.lag, target.lag_seconds, target.members, o.details):
                dirty.append(target)
        # Only last_sampled_at moved for the others: one plain UPDATE instead of a CASE per field and row.
        ConsumerTarget.objects.filter(pk__in=[t.pk for t in targets.values()]).update(
            last_sampled_at=now, error="", gone=False
        )
        _update_targets(dirty)
        seen = set(targets)
        for key, target in existing.items():
            broker, name = key[0], key[1]
            source = target.connection_key
            if key in seen:
                continue
            if source in errors:
                # The connection did not answer: its targets are in error, not gone.
                if target.status != "ERR" or target.error != errors[source]:
                    target.status, target.reason, target.error = "ERR", "the broker did not answer", errors[source]
                    target.status_since = now
                    target.save(update_fields=["status", "reason", "error", "status_since"])
                    changed.append(target.pk)
            elif not target.gone and (
                broker in ("celery", "outbox", "dlq") or brokers.is_configured(broker, name or None)
            ):
                target.gone = True
                target.save(update_fields=["gone"])
                changed.append(target.pk)
    return changed, created


def _unchanged(known: PartitionState | None, fp: str, ts: float) -> bool:
    """Whether this pass saw exactly the offsets of the stored state, with nothing time-driven due for its
    partitions (a heartbeat row, a first write-time estimate): then walking them would change nothing."""
    if known is None or known.fingerprint != fp or known.seen_at is None or known.seen_at > ts:
        return False
    s = known.summary
    if not s or s.get("unknown") or s.get("stored") is None:
        return False
    return ts - s["stored"] < settings.MONITORING_PARTITION_HEARTBEAT_SECONDS


def _upsert_states(states: list[PartitionState]) -> None:
    """INSERT … ON CONFLICT with each JSON document as its own parameter. Django 5.2's bulk_create sends the rows
    as arrays (UNNEST), and psycopg quotes every double quote of a text array element with a regular expression:
    1.4 s for 50 states of 1,000 partitions, where this takes a few milliseconds."""
    with connection.cursor() as cursor:
        for start in range(0, len(states), 100):
            batch = states[start : start + 100]
            params = []
            for state in batch:
                params += [
                    state.target_id,
                    json.dumps(state.partitions, separators=(",", ":")),
                    state.seen_at,
                    state.fingerprint,
                    json.dumps(state.summary, separators=(",", ":")),
                ]
            cursor.execute(
                "INSERT INTO monitoring_partitionstate (target_id, partitions, seen_at, fingerprint, summary) VALUES "
                + ", ".join(["(%s, %s::jsonb, %s, %s, %s::jsonb)"] * len(batch))
                + " ON CONFLICT (target_id) DO UPDATE SET partitions = EXCLUDED.partitions, seen_at = EXCLUDED.seen_at,"
                " fingerprint = EXCLUDED.fingerprint, summary = EXCLUDED.summary",
                params,
            )


def _update_targets(targets: list[ConsumerTarget]) -> None:
    """One UPDATE from arrays for the targets whose figures moved (lag seconds grow every pass, so on a lagging
    cluster that is most of them): bulk_update's CASE per field and row cost more to build than to run."""
    if not targets:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE monitoring_consumertarget t
            SET status = v.status, status_since = v.status_since, reason = v.reason, lag = v.lag,
                lag_seconds = v.lag_seconds, members = v.members, details = v.details::jsonb
            FROM unnest(
                %s::bigint[], %s::text[], %s::timestamptz[], %s::text[], %s::bigint[], %s::float8[], %s::int[],
                %s::text[]
            ) AS v(id, status, status_since, reason, lag, lag_seconds, members, details)
            WHERE t.id = v.id
            """,
            [
                [t.pk for t in targets],
                [t.status for t in targets],
                [t.status_since for t in targets],
                [t.reason for t in targets],
                [t.lag for t in targets],
                [t.lag_seconds for t in targets],
                [t.members for t in targets],
                [json.dumps(t.details) for t in targets],
            ],
        )


def _copy_samples(rows: list[tuple | str]) -> None:
    """COPY is an order of magnitude faster than INSERT for the tens of thousands of partition rows a big cluster
    gives per pass (bench/consumers.py). Partition rows come as ready COPY text lines, target rows as tuples."""
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY monitoring_sample ({', '.join(SAMPLE_COLUMNS)}) FROM STDIN") as copy:
            lines = [row for row in rows if isinstance(row, str)]
            if lines:
                copy.write("".join(lines))
            for row in rows:
                if not isinstance(row, str):
                    copy.write_row(row)


def _window_points(target_ids: list[int], now: datetime, window: float) -> dict[int, list[Point]]:
    since = datetime.fromtimestamp(now.timestamp() - window, UTC)
    points: dict[int, list[Point]] = {}
    rows = (
        Sample.objects.filter(target_id__in=target_ids, partition__isnull=True, time__gte=since)
        .order_by("target_id", "time")
        .values_list("target_id", "time", "lag", "committed", "members")
    )
    for target_id, t, lag, committed, members in rows:
        points.setdefault(target_id, []).append(Point(t.timestamp(), lag, committed, members))
    return points


def _produce_times(observations, targets, states, now, borns=None) -> dict[tuple[int, str, int], float]:
    """Estimated write time of the message at each lagging partition's committed offset.

    One query per pass: for every lagging partition, the latest earlier sample whose end offset had not yet reached
    the committed offset, and the first sample after it that had (falling back to this pass's end offset).
    Partitions whose committed offset did not move keep the estimate of an earlier pass (it cannot change: later
    samples all have end offsets past the committed one), so a steady pass asks for none.

    A partition lagging since the pass that first saw its group (`borns`), whose committed offset never moved and
    whose lag was never zero, needs no query either: no sample can have an end offset at or below its committed
    one, and the first with an end past it is that first pass's row, so the estimate is that pass's time. This is
    the second pass after a big group appears, which otherwise asks for every lagging partition at once.
    """
    ids, topics, parts, committed, ends, topic_index = [], [], [], [], [], {}
    found: dict[tuple[int, str, int], float] = {}
    since = datetime.fromtimestamp(now.timestamp() - settings.MONITORING_PARTITION_RETENTION_SECONDS, UTC)
    for o in observations:
        pk = targets[(o.broker, o.connection, o.name)].pk
        state = states.get(pk, {})
        born = (borns or {}).get(pk)
        for topic, partition, c, end in o.partitions:
            known = state.get(f"{topic}/{partition}")
            if known is not None and known[F_COMMITTED] == c and known[F_PRODUCED] is not None:
                continue
            if (
                born is not None
                and known is not None
                and end > (c or 0)
                and born >= since.timestamp()
                and known[F_COMMITTED] == c
                and known[F_FIRST] == born
                and known[F_PROGRESSED] == born
                and known[F_ZERO] is None
            ):
                found[(pk, topic, partition)] = born
                continue
            if end > (c or 0):
                ids.append(pk)
                # Topics go as an index into a short array: psycopg quotes every text array element with a regex.
                topics.append(topic_index.setdefault(topic, len(topic_index) + 1))
                parts.append(partition)
                committed.append(c or 0)
                ends.append(end)
    if not ids:
        return found
    sql = """
        SELECT c.target_id, c.topic, c.part, c.committed, prev.time, prev.end_offset, nxt.time, nxt.end_offset
        FROM (
            SELECT u.target_id, (%s::text[])[u.topic_no] AS topic, u.part, u.committed
            FROM unnest(%s::bigint[], %s::int[], %s::int[], %s::bigint[]) AS u(target_id, topic_no, part, committed)
        ) c
        LEFT JOIN LATERAL (
            SELECT s.time, s.end_offset FROM monitoring_sample s
            WHERE s.target_id = c.target_id AND s.topic = c.topic AND s.partition = c.part
              AND s.time >= %s AND s.end_offset <= c.committed
            ORDER BY s.time DESC LIMIT 1
        ) prev ON true
        LEFT JOIN LATERAL (
            SELECT s.time, s.end_offset FROM monitoring_sample s
            WHERE s.target_id = c.target_id AND s.topic = c.topic AND s.partition = c.part
              AND s.time >= coalesce(prev.time, %s) AND s.end_offset > c.committed
            ORDER BY s.time ASC LIMIT 1
        ) nxt ON true
    """
    names = list(topic_index)
    end_now = {(i, names[t - 1], p): e for i, t, p, e in zip(ids, topics, parts, ends, strict=True)}
    with connection.cursor() as cursor:
        cursor.execute(sql, [names, ids, topics, parts, committed, since, since])
        for target_id, topic, part, c, t0, e0, t1, e1 in cursor.fetchall():
            before = (t0.timestamp(), e0) if t0 is not None else None
            if t1 is not None:
                after = (t1.timestamp(), e1)
            elif before is not None:
                after = (now.timestamp(), end_now[(target_id, topic, part)])
            else:
                continue  # first time we see this lag: no estimate yet
            found[(target_id, topic, part)] = estimate_produce_time(c, before, after)
    return found


def tally(now: datetime) -> StatusTally:
    """Count the watched targets per status after a pass (the dashboard's consumers-not-OK chart)."""
    counts = dict(ConsumerTarget.objects.filter(gone=False).values_list("status").annotate(n=Count("id")).order_by())
    return StatusTally.objects.create(
        time=now, counts=counts, not_ok=sum(n for status, n in counts.items() if status != "OK")
    )


def downsample(now: datetime | None = None) -> dict:
    """Keep history affordable:

    1. Partition rows older than MONITORING_PARTITION_RETENTION_SECONDS are deleted (drill-down is for the recent past).
    2. Target rows older than MONITORING_DOWNSAMPLE_AFTER_SECONDS keep one row per target per 5-minute bucket.
    3. Everything older than MONITORING_RETENTION_SECONDS is deleted.
    """
    now = now or timezone.now()

    def ago(seconds):
        return datetime.fromtimestamp(now.timestamp() - seconds, UTC)

    partitions = Sample.objects.filter(
        partition__isnull=False, time__lt=ago(settings.MONITORING_PARTITION_RETENTION_SECONDS)
    ).delete()[0]
    expired = Sample.objects.filter(time__lt=ago(settings.MONITORING_RETENTION_SECONDS)).delete()[0]
    StatusTally.objects.filter(time__lt=ago(settings.MONITORING_RETENTION_SECONDS)).delete()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            DELETE FROM monitoring_sample WHERE id IN (
                SELECT id FROM (
                    SELECT id, row_number() OVER (
                        PARTITION BY target_id, floor(extract(epoch FROM time) / 300) ORDER BY time
                    ) AS n
                    FROM monitoring_sample
                    WHERE partition IS NULL AND time < %s AND NOT downsampled
                ) ranked WHERE n > 1
            )
            """,
            [ago(settings.MONITORING_DOWNSAMPLE_AFTER_SECONDS)],
        )
        thinned = cursor.rowcount
        cursor.execute(
            "UPDATE monitoring_sample SET downsampled = true WHERE partition IS NULL AND time < %s AND NOT downsampled",
            [ago(settings.MONITORING_DOWNSAMPLE_AFTER_SECONDS)],
        )
    return {"partitions": partitions, "expired": expired, "thinned": thinned}
