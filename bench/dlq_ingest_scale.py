"""Dead-letter ingest at scale: two `dlq_ingest` processes against one on the same sources (target ≥ 1.7×), and the
cost of a round over many idle sources.

    .venv/bin/python -m tools.services run -- .venv/bin/python bench/dlq_ingest_scale.py [--per-source N]

Creates (and drops at the end) its own database `sy_bench_ingest`. Each run: fresh Kafka topics (3 partitions each)
and sources, the real `manage.py dlq_ingest` processes started and settled (each holds its share of the leases),
then the dead letters published at once; throughput is rows stored ÷ time from the first to the last row, as the
database counts them. Both runs happen here, one after the other, on the same machine (its other load included).
"""

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchdb  # noqa: E402
import cpu  # noqa: E402

DB = "sy_bench_ingest"
SOURCES = 4
TARGET = 1.7


def run(processes: int, per_source: int) -> dict:
    from brokers.base import OutgoingMessage
    from console import brokers, leases
    from dlq.models import DeadLetter, DeadLetterSource

    kafka = brokers.get("kafka")
    topics = [f"bench-ingest-{uuid.uuid4().hex[:8]}.DLQ" for _ in range(SOURCES)]
    for topic in topics:
        kafka.ensure_destination(topic, partitions=3)
    body = json.dumps({"order": "x" * 200}).encode()
    headers = {"x-exception-type": "ValueError", "x-exception-message": "bench"}
    for topic in topics:  # all there before anyone reads: the publisher's pace is not measured
        kafka.publish_batch([OutgoingMessage(topic, body, f"k{i}".encode(), headers) for i in range(per_source)])
    # Disabled until every process is up, then enabled at once: each claims its share on its next tick, and no
    # process reads a source it is about to hand over.
    sources = [
        DeadLetterSource.objects.create(broker="kafka", destination=t, origin="bench", enabled=False) for t in topics
    ]
    argv = [sys.executable, "manage.py", "dlq_ingest", "--no-discovery", "--batch", "100"]
    for s in sources:
        argv += ["--source", str(s.pk)]
    env = {**os.environ, "DLQ_INGEST_LEASE_SECONDS": "3", "LOG_LEVEL": "WARNING"}
    workers = [
        subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(processes)
    ]
    try:
        deadline = time.monotonic() + 60
        while len(leases.live("dlq-ingest:member:")) < processes:
            assert time.monotonic() < deadline, "the processes did not start"
            time.sleep(0.2)
        DeadLetterSource.objects.filter(pk__in=[s.pk for s in sources]).update(enabled=True)
        total = SOURCES * per_source
        stored = DeadLetter.objects.filter(source__in=sources)
        first = None
        deadline = time.monotonic() + 600
        with cpu.Meter() as meter:
            before = sum(_cpu_seconds(w.pid) for w in workers)
            while (count := stored.count()) < total:
                if count and first is None:
                    first = (time.monotonic(), count)
                assert time.monotonic() < deadline, f"only {count} of {total} stored"
                time.sleep(0.05)
            last = time.monotonic()
            used = sum(_cpu_seconds(w.pid) for w in workers) - before
        rate = (total - first[1]) / (last - first[0])
        return {
            "processes": processes,
            "total": total,
            "seconds": last - first[0],
            "rate": rate,
            "us_per_row": used / total * 1e6,
            "machine": meter.usage,
        }
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(30)
        for topic in topics:
            kafka.delete_destination(topic)


def _cpu_seconds(pid: int) -> float:
    """utime + stime of one process (all its threads, ended ones included)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / cpu.TICK


def round_cost(n: int) -> float:
    """One round of a dlq_ingest process over n idle RabbitMQ sources (ms), after the one that opens them."""
    from console import brokers
    from dlq import ingest
    from dlq.management.commands.dlq_ingest import Command
    from dlq.models import DeadLetterSource

    rabbit = brokers.get("rabbitmq")
    queues = [f"bench-idle-{uuid.uuid4().hex[:8]}" for _ in range(n)]
    for q in queues:
        rabbit.ensure_destination(q)
    sources = [DeadLetterSource.objects.create(broker="rabbitmq", destination=q) for q in queues]
    command = Command()
    options = {"source": [s.pk for s in sources], "batch": 100}
    try:
        command._round(options)
        started = time.perf_counter()
        command._round(options)
        return (time.perf_counter() - started) * 1000
    finally:
        command._release()
        ingest.close_all()
        for q in queues:
            rabbit.delete_destination(q)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-source", type=int, default=2500)
    args = parser.parse_args()
    benchdb.recreate_database(DB)
    try:
        benchdb.setup_django(DB)
        one = run(1, args.per_source)
        two = run(2, args.per_source)
        ratio = two["rate"] / one["rate"]
        for r in (one, two):
            usage = r["machine"]
            print(
                f"ingest, {r['processes']} process(es): {r['total']} dead letters on {SOURCES} Kafka sources "
                f"in {r['seconds']:.1f} s = {r['rate']:.0f}/s; {r['us_per_row']:.0f} µs CPU per dead letter in the "
                f"ingest processes; machine: {usage.busy / usage.wall:.2f} of {cpu.CORES} cores busy "
                f"(postgres {usage.groups['postgres'] / usage.wall:.2f}, "
                f"broker {usage.groups['broker'] / usage.wall:.2f}, "
                f"other processes {usage.groups['other'] / usage.wall:.2f} — the ingest processes and other load)"
            )
        print(f"ingest 2 processes vs 1: {ratio:.2f}× (target ≥ {TARGET}×) {'OK' if ratio >= TARGET else 'MISSED'}")
        print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {cpu.CORES} cores")
        for n in (40, 200):
            ms = round_cost(n)
            print(f"a round over {n} idle RabbitMQ sources: {ms:.0f} ms (before: ≥ {n * 200} ms, 0.2 s per source)")
    finally:
        from django.db import connections

        connections.close_all()
        benchdb.drop_database(DB)


if __name__ == "__main__":
    main()
