"""Decoding at ingest: 10,000 Avro dead letters ingested decoded vs the same bodies undecoded, and the page of 50.

    .venv/bin/python bench/formats.py [--n 10000]

Creates (and drops at the end) its own database `sy_bench_formats`. Both runs go through the ingest worker's own
`dlq.ingest.store()` in batches of 100 (what one `run_once` stores), on the same Confluent-framed Avro bodies made by
confluent-kafka's AvroSerializer against a local registry (tests/formats/registry.py, the tests' REST stand-in):
  - undecoded: the formats hook switched off (the ingest as it was before formats/);
  - decoded: the hook on, the source's Kafka connection naming the registry.
Then the inbox page of 50 and a dead letter's page, rendered by the real views through Django's test client, for
decoded and undecoded rows. Targets (issue 13): ingest ≥ 0.5 of undecoded; page ≤ 1.5 × undecoded.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import benchdb  # noqa: E402

DB = "sy_bench_formats"
BATCH = 100
SCHEMA = {
    "type": "record",
    "name": "OrderPlaced",
    "namespace": "acme.orders",
    "fields": [
        {"name": "order_id", "type": "string"},
        {"name": "quantity", "type": "int"},
        {"name": "lines", "type": {"type": "array", "items": "string"}},
        {"name": "note", "type": ["null", "string"], "default": None},
    ],
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    args = parser.parse_args()
    benchdb.recreate_database(DB)
    try:
        benchdb.setup_django(DB)
        run(args.n)
    finally:
        from django.db import connections

        connections.close_all()
        benchdb.drop_database(DB)


def run(n: int) -> None:
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext
    from django.conf import settings
    from django.contrib.auth.models import Group, User
    from django.test import Client

    from brokers.base import Message
    from brokers.connections import KafkaConnection, SchemaRegistry
    from console import brokers
    from dlq import ingest
    from dlq.models import DeadLetter, DeadLetterSource
    from formats import ingest as formats_ingest
    from formats import registries
    from tests.formats.registry import Registry

    with Registry() as registry:
        settings.BROKERS = {
            **settings.BROKERS,
            "kafka": {
                "default": KafkaConnection(bootstrap_servers=["127.0.0.1:9"]),
                "decoded": KafkaConnection(
                    bootstrap_servers=["127.0.0.1:9"], schema_registry=SchemaRegistry(url=registry.url)
                ),
            },
        }
        brokers.reset()
        registries.reset()
        serializer = AvroSerializer(SchemaRegistryClient({"url": registry.url}), json.dumps(SCHEMA))
        ctx = SerializationContext("orders", MessageField.VALUE)
        bodies = [
            serializer({"order_id": f"ord-{i}", "quantity": i % 7, "lines": [f"SKU-{i % 97}"] * 3, "note": None}, ctx)
            for i in range(n)
        ]
        headers = {"x-exception-type": b"app.ValidationError", "x-exception-message": b"quantity must be positive"}

        def messages(topic: str) -> list[Message]:
            return [Message(topic, body, None, dict(headers), partition=0, offset=i) for i, body in enumerate(bodies)]

        def ingest_all(source, msgs) -> float:
            start = time.perf_counter()
            for i in range(0, len(msgs), BATCH):
                ingest.store(source, msgs[i : i + BATCH])
            return time.perf_counter() - start

        plain = DeadLetterSource.objects.create(broker="kafka", connection="default", destination="orders.DLQ")
        decoded = DeadLetterSource.objects.create(broker="kafka", connection="decoded", destination="orders-avro.DLQ")
        warm = DeadLetterSource.objects.create(broker="kafka", connection="decoded", destination="warm.DLQ")
        ingest_all(warm, messages("warm.DLQ")[:BATCH])  # the registry's one round trip and the serdes, once

        enrich = formats_ingest.enrich
        plain_msgs, decoded_msgs = messages("orders.DLQ"), messages("orders-avro.DLQ")
        undecoded_s = decoded_s = 0.0
        chunk = 1000  # alternating chunks, so neither side gets the warmer machine or the emptier table
        for start in range(0, n, chunk):
            formats_ingest.enrich = lambda row, source, message: None  # the ingest before formats/
            try:
                undecoded_s += ingest_all(plain, plain_msgs[start : start + chunk])
            finally:
                formats_ingest.enrich = enrich
            decoded_s += ingest_all(decoded, decoded_msgs[start : start + chunk])
        sample = DeadLetter.objects.filter(source=decoded).first()
        assert sample.decoded["decoder"] == "avro", sample.decoded
        assert DeadLetter.objects.filter(source=decoded).count() == n

        print(f"ingest of {n} Avro dead letters (batches of {BATCH}):")
        print(f"  undecoded: {undecoded_s:.2f} s  ({n / undecoded_s:,.0f}/s)")
        print(f"  decoded:   {decoded_s:.2f} s  ({n / decoded_s:,.0f}/s)")
        ratio = undecoded_s / decoded_s
        print(f"  decoded throughput / undecoded: {ratio:.2f}  (target >= 0.5: {'ok' if ratio >= 0.5 else 'MISSED'})")

        user = User.objects.create_user("bench", password="x")
        user.groups.add(Group.objects.get_or_create(name="admin")[0])
        client = Client()
        client.force_login(user)

        def timed_pair(a: str, b: str, rounds: int = 60) -> tuple[float, float]:
            """Medians of `a` and `b`, requested alternately (the machine's load falls on both alike)."""
            client.get(a), client.get(b)
            times: dict[str, list[float]] = {a: [], b: []}
            for _ in range(rounds):
                for url in (a, b):
                    started = time.perf_counter()
                    response = client.get(url)
                    times[url].append(time.perf_counter() - started)
                    assert response.status_code == 200
            return statistics.median(times[a]), statistics.median(times[b])

        plain_page, decoded_page = timed_pair(
            f"/dead-letters/?source={plain.pk}", f"/dead-letters/?source={decoded.pk}"
        )
        plain_one = DeadLetter.objects.filter(source=plain).first().pk
        decoded_one = DeadLetter.objects.filter(source=decoded).first().pk
        plain_detail, decoded_detail = timed_pair(f"/dead-letters/{plain_one}/", f"/dead-letters/{decoded_one}/")
        print("page of 50 (median of 60):")
        print(f"  undecoded: {plain_page * 1000:.1f} ms   decoded: {decoded_page * 1000:.1f} ms")
        page_ratio = decoded_page / plain_page
        print(f"  decoded / undecoded: {page_ratio:.2f}  (target <= 1.5: {'ok' if page_ratio <= 1.5 else 'MISSED'})")
        print("one dead letter's page (median of 60):")
        print(f"  undecoded: {plain_detail * 1000:.1f} ms   decoded: {decoded_detail * 1000:.1f} ms")
        print(f"  decoded / undecoded: {decoded_detail / plain_detail:.2f}")


if __name__ == "__main__":
    main()
