"""Dead-letter replay: throughput per broker, against the seed's SQS loop and a raw Kafka producer, and rate accuracy.

    .venv/bin/python -m tools.services run -- .venv/bin/python bench/dlq_replay.py [--kafka N] [--rate R]

Creates (and drops at the end) its own database `sy_bench_dlq`. A replay here is the real `dlq.replay` operation run
in this process (`console.operations.execute`): frozen ids → rows and bodies from Postgres → the adapter's batch
publish → ReplayRecords and status in one transaction per batch. Baselines are measured in the same run:
  - SQS: the seed's loop (receive 1, send 1, delete 1) moving messages from a DLQ to its origin; compared with
    Switchyard's ingest (receive 10, store, delete the batch after the commit) + replay (send batches of 10).
  - Kafka: a raw confluent-kafka producer sending the same bodies and headers (produce, poll(0), one flush), with
    the adapter's producer settings (acks=all, idempotence, linger.ms=5); both sides warmed by one message first.
"""

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import benchdb  # noqa: E402  (bench/ is on sys.path as the script directory)
import cpu  # noqa: E402

DB = "sy_bench_dlq"
SQS_N = 200  # moto slows down past a few hundred messages in one queue
SQS_RATE_N = 500  # five seconds at 100 msg/s: the run's fixed start-up cost stays well under the ±5 % it is judged by


def recreate_database() -> None:
    benchdb.recreate_database(DB)


def drop_database() -> None:
    benchdb.drop_database(DB)


def setup_django() -> None:
    benchdb.setup_django(DB)


def body(i: int) -> bytes:
    return json.dumps({"order": i, "lines": [{"sku": f"SKU-{i % 97}", "qty": 1 + i % 5}], "pad": "x" * 200}).encode()


HEADERS = {"x-event-id": None, "x-message-type": b"OrderPlaced", "content-type": b"application/json"}


def headers(i: int) -> dict[str, bytes]:
    return {**HEADERS, "x-event-id": f"evt-{i}".encode()}


def seed_dead_letters(broker: str, origin: str, n: int) -> list[int]:
    from django.utils import timezone

    from dlq.models import DeadLetter, DeadLetterSource

    source, _ = DeadLetterSource.objects.get_or_create(broker=broker, destination=f"{origin}-dlq", origin=origin)
    now = timezone.now()
    rows = DeadLetter.objects.bulk_create(
        DeadLetter(
            source=source,
            origin=origin,
            message_id=f"bench-{i}",
            headers={k: v.decode() for k, v in headers(i).items()},
            body=body(i),
            body_size=len(body(i)),
            content_type="application/json",
            first_failure_at=now,
            last_failure_at=now,
            fingerprint=f"bench-{broker}",
        )
        for i in range(n)
    )
    return [row.pk for row in rows]


def replay(ids: list[int], **options) -> tuple[float, dict]:
    """Run one dlq.replay operation here; (seconds, result)."""
    from django.contrib.auth.models import User

    from console.models import Operation
    from console.operations import execute
    from dlq.operations import validate

    user = User.objects.get(username="bench")
    params = validate({"ids": ids, **options})
    op = Operation.objects.create(
        kind="dlq.replay", requested_by=user, parameters=params, reason="bench", idempotency_key=uuid.uuid4().hex
    )
    started = time.perf_counter()
    state = execute(op.pk)
    seconds = time.perf_counter() - started
    op.refresh_from_db()
    if state != "succeeded" or op.error_count:
        raise SystemExit(f"replay {state}: {op.message} {op.errors[:3]}")
    return seconds, op.result


def make(broker: str, **options) -> str:
    from console import brokers

    name = f"bench-{uuid.uuid4().hex[:8]}"
    brokers.get(broker).ensure_destination(name, **options)
    MADE.append((broker, name))
    return name


MADE: list[tuple[str, str]] = []


def warm(broker: str, destination: str) -> None:
    """One message first, so neither side's timing includes the connection or a new topic's metadata."""
    from brokers.base import OutgoingMessage
    from console import brokers

    brokers.get(broker).publish_batch([OutgoingMessage(destination, b"{}", None, {})])


def throughput(broker: str, n: int, usage: list | None = None) -> float:
    """Replay n fresh dead letters; with `usage`, the machine's CPU during the replay is appended to it."""
    origin = make(broker)
    warm(broker, origin)
    ids = seed_dead_letters(broker, origin, n)
    with cpu.Meter() as meter:
        seconds, _ = replay(ids)
    if usage is not None:
        usage.append(meter.usage)
    rate = n / seconds
    print(f"  {broker:<9} {n:>6} messages in {seconds:6.2f} s = {rate:8.0f} msg/s")
    return rate


def sqs_seed_loop(n: int, usage: list | None = None) -> float:
    """The seed's redrive: receive 1, send 1, delete 1, until the DLQ is empty. Returns msg/s."""
    from brokers.base import OutgoingMessage
    from console import brokers

    sqs = brokers.get("sqs")
    origin, dlq = make("sqs"), make("sqs")
    sqs.publish_batch([OutgoingMessage(dlq, body(i), None, headers(i)) for i in range(n)])
    client, dlq_url, origin_url = sqs._client, sqs._queue_url(dlq), sqs._queue_url(origin)
    moved = 0
    meter = cpu.Meter().__enter__()
    while moved < n:
        got = client.receive_message(
            QueueUrl=dlq_url, MaxNumberOfMessages=1, MessageAttributeNames=["All"], WaitTimeSeconds=1
        ).get("Messages", [])
        for m in got:
            client.send_message(
                QueueUrl=origin_url, MessageBody=m["Body"], MessageAttributes=m.get("MessageAttributes", {})
            )
            client.delete_message(QueueUrl=dlq_url, ReceiptHandle=m["ReceiptHandle"])
            moved += 1
    meter.__exit__(None, None, None)
    if usage is not None:
        usage.append(meter.usage)
    return n / meter.usage.wall


def sqs_seed_sends(n: int) -> float:
    """The seed loop's send step alone (send_message one at a time): the like-for-like baseline of a replay alone,
    whose messages are already in Postgres. Returns msg/s."""
    from console import brokers

    sqs = brokers.get("sqs")
    queue = make("sqs")
    url = sqs._queue_url(queue)
    started = time.perf_counter()
    for i in range(n):
        sqs._client.send_message(QueueUrl=url, MessageBody=body(i).decode())
    return n / (time.perf_counter() - started)


def moto_alone(n: int) -> float:
    """moto with no Switchyard code: send_message_batch of 10 from SQS_WORKERS threads, entries built in advance.
    What the broker gives at this moment; it varies by 2x between runs on a busy machine. Returns msg/s."""
    from concurrent.futures import ThreadPoolExecutor

    from brokers.sqs import SQS_WORKERS
    from console import brokers

    sqs = brokers.get("sqs")
    queue = make("sqs")
    url = sqs._queue_url(queue)
    chunks = [[{"Id": str(i), "MessageBody": body(start + i).decode()} for i in range(10)] for start in range(0, n, 10)]
    clients = [sqs._new_client() for _ in range(SQS_WORKERS)]
    with ThreadPoolExecutor(SQS_WORKERS) as pool:
        list(pool.map(lambda c: c.get_queue_url(QueueName=url.rsplit("/", 1)[-1]), clients))  # connect first
        started = time.perf_counter()
        list(
            pool.map(
                lambda k: clients[k % SQS_WORKERS].send_message_batch(QueueUrl=url, Entries=chunks[k]),
                range(len(chunks)),
            )
        )
        return len(chunks) * 10 / (time.perf_counter() - started)


def sqs_switchyard(n: int, usage: list | None = None) -> tuple[float, float]:
    """Ingest the DLQ (receive 10, commit, delete the batch) then replay to the origin: (end-to-end, replay) msg/s."""
    from brokers.base import OutgoingMessage
    from console import brokers
    from dlq import ingest
    from dlq.models import DeadLetter, DeadLetterSource

    sqs = brokers.get("sqs")
    origin, dlq = make("sqs"), make("sqs")
    sqs.publish_batch([OutgoingMessage(dlq, body(i), None, headers(i)) for i in range(n)])
    source = DeadLetterSource.objects.create(broker="sqs", destination=dlq, origin=origin)
    started = time.perf_counter()
    while DeadLetter.objects.filter(source=source).count() < n:
        ingest.run_once(source, 100, timeout=1)
    ingested = time.perf_counter() - started
    ids = list(DeadLetter.objects.filter(source=source).order_by("id").values_list("id", flat=True))
    with cpu.Meter() as meter:
        seconds, _ = replay(ids)
    if usage is not None:
        usage.append(meter.usage)
    return n / (ingested + seconds), n / seconds


def kafka_raw(n: int, prebuilt: bool = True, usage: list | None = None) -> float:
    """A raw confluent-kafka producer of the same messages: produce all, poll(0) as it goes, flush once.

    Same producer settings as the adapter (acks=all, idempotence, linger.ms=5), so the ratio compares like with like.
    prebuilt: bodies and headers are built before the clock starts (the baseline is the producer, not json.dumps);
    otherwise each is built inside the timed loop, as an application producing from its own objects would — printed
    beside the other for context.
    """
    from confluent_kafka import Producer

    from brokers.kafka import PRODUCER_DEFAULTS

    topic = make("kafka")
    build = lambda i: (body(i), list(headers(i).items()))  # noqa: E731
    messages = [build(i) for i in range(n)] if prebuilt else None
    producer = Producer({**PRODUCER_DEFAULTS, "bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"]})
    producer.produce(topic, b"{}")
    producer.flush(30)
    with cpu.Meter() as meter:
        for i in range(n):
            value, hdrs = messages[i] if messages is not None else build(i)
            while True:
                try:
                    producer.produce(topic, value, key=None, headers=hdrs)
                    break
                except BufferError:
                    producer.poll(0.01)
            producer.poll(0)
        left = producer.flush(60)
    if left:
        raise SystemExit(f"raw producer: {left} messages not delivered")
    if usage is not None:
        usage.append(meter.usage)
    return n / meter.usage.wall


def limited(broker: str, n: int, rate: float) -> float:
    """A paced replay of n dead letters. On SQS they come from several origins of at most SQS_N messages each: moto
    scans the whole queue on every request, so one queue of 500 would measure moto's slowdown, not the pacer."""
    per_origin = SQS_N if broker == "sqs" else n
    ids: list[int] = []
    for start in range(0, n, per_origin):
        origin = make(broker)
        warm(broker, origin)
        ids += seed_dead_letters(broker, origin, min(per_origin, n - start))
    seconds, _ = replay(ids, rate=rate)
    return n / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kafka", type=int, default=20000, help="messages for the Kafka runs")
    parser.add_argument("--others", type=int, default=1000, help="messages for RabbitMQ and NATS")
    parser.add_argument("--rate", type=float, default=200, help="the limit for the rate-accuracy run")
    args = parser.parse_args()
    recreate_database()
    try:
        setup_django()
        from django.contrib.auth.models import User

        from brokers.kafka import PRODUCER_DEFAULTS
        from brokers.sqs import SQS_WORKERS
        from console import brokers

        User.objects.create_user("bench")
        configured = brokers.defaults()
        print(f"brokers: {', '.join(sorted(configured))}")
        print("replay throughput (dlq.replay operation, batch size adaptive, no rate limit):")
        unlimited = {}
        for broker, n in (("kafka", args.kafka), ("sqs", SQS_N), ("rabbitmq", args.others), ("nats", args.others)):
            if broker in configured:
                unlimited[broker] = throughput(broker, n)
            else:
                print(f"  {broker:<9} not configured")

        seed_cpu, sqs_cpu = [], []
        seed = sqs_seed_loop(SQS_N, usage=seed_cpu)
        seed_sends = sqs_seed_sends(SQS_N)
        alone = moto_alone(SQS_N)
        end_to_end, replay_only = sqs_switchyard(SQS_N, usage=sqs_cpu)
        print(f"SQS, {SQS_N} messages DLQ → origin:")
        print(f"  seed loop (receive 1, send 1, delete 1):    {seed:8.0f} msg/s")
        print(f"  seed loop's sends alone (send 1 at a time): {seed_sends:8.0f} msg/s")
        print(f"  moto alone (batches of 10 from {SQS_WORKERS} threads, no Switchyard code): {alone:8.0f} msg/s")
        # The target sits on like-for-like work (issue 14): sends against sends, and the whole move against the
        # whole move. Replay alone against the seed's full loop (send-only against receive+send+delete) is shown
        # for what the operator waits for, with no target on it: it would flatter the replay by the unequal work.
        like = replay_only / seed_sends
        print(
            f"  Switchyard replay alone:                    {replay_only:8.0f} msg/s = {like:5.1f}x "
            f"the seed loop's sends alone (target ≥ 10x: {'met' if like >= 10 else 'NOT met'}), "
            f"{replay_only / alone:.2f} x moto alone"
        )
        print(
            f"    — what the operator waits for (the dead letters are already in Postgres): {replay_only / seed:.1f}x "
            "the seed's whole loop, unequal work, no target"
        )
        print(
            f"  Switchyard ingest + replay:                 {end_to_end:8.0f} msg/s = {end_to_end / seed:5.1f}x "
            "the seed loop (like for like: receive, send, delete)"
        )
        print("    — the same move as the seed loop, but ingest runs ahead of any replay")
        # moto serves requests on one Python thread at a time: when it is busy for most of the replay's wall time,
        # the replay is waiting on moto, and no arrangement of our requests goes faster (bench/cpu.py).
        for name, usage in (("seed loop", seed_cpu[0]), ("replay", sqs_cpu[0])):
            busy = usage.groups.get("moto", 0.0) / usage.wall
            print(f"  {name}: moto busy {busy:.2f} of the wall time; {usage.describe(SQS_N)}")

        raw_cpu, ours_cpu = [], []
        raw = kafka_raw(args.kafka, usage=raw_cpu)
        building = kafka_raw(args.kafka, prebuilt=False)
        ours = throughput("kafka", args.kafka, usage=ours_cpu)
        print(
            f"Kafka, {args.kafka} messages: raw producer (same settings as the adapter: "
            f"{', '.join(f'{k}={v}' for k, v in PRODUCER_DEFAULTS.items())}), messages built before the clock "
            f"starts: {raw:8.0f} msg/s; replay / raw = {ours / raw:.2f} (target ≥ 0.5)"
        )
        print(
            f"  for context: the raw producer building each message in its loop (json.dumps + headers): "
            f"{building:8.0f} msg/s; replay / that = {ours / building:.2f}"
        )
        # Why the ratio is what it is: CPU per message of each side, machine-wide (bench/cpu.py).
        print(f"  replay: {ours_cpu[0].describe(args.kafka)}")
        print(f"  raw:    {raw_cpu[0].describe(args.kafka)}")
        ceiling = ours_cpu[0].ceiling(args.kafka)
        print(
            f"  with all {cpu.CORES} cores on it, the replay's CPU per message allows at most {ceiling:,.0f} msg/s "
            f"= {ceiling / raw:.2f} of the raw producer"
        )

        for broker in ("kafka", "sqs"):
            rate = args.rate
            if unlimited[broker] < rate * 1.1:
                # The broker cannot go as fast as the limit: that is the broker's pace, not the pacer missing.
                print(
                    f"rate limit {rate:g} msg/s on {broker}: not achievable here — {broker} replays at most "
                    f"{unlimited[broker]:.0f} msg/s unlimited in this run; checking a limit of half that instead"
                )
                rate = round(unlimited[broker] / 2)
            n = int(rate * 5)  # five seconds at the limit
            achieved = limited(broker, min(n, SQS_RATE_N) if broker == "sqs" else n, rate)
            off = (achieved - rate) / rate
            print(f"rate limit {rate:g} msg/s on {broker}: achieved {achieved:.1f} msg/s ({off:+.1%}, target ±5%)")
    finally:
        from console import brokers

        for broker, name in MADE:
            try:
                brokers.get(broker).delete_destination(name)
            except Exception:  # noqa: BLE001 - cleanup is best effort
                pass
        from django.db import connections

        connections.close_all()
        drop_database()


if __name__ == "__main__":
    main()
