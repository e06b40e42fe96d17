"""The dead-letter inbox at scale: first-page p95 with any single filter over N dead letters (target ≤ 150 ms), and the
table's size on disk.

    .venv/bin/python -m tools.services run -- .venv/bin/python bench/dlq_inbox.py [--dead-letters N] [--keep]

Creates (and drops at the end) its own database `sy_bench_inbox`. Seeds with one server-side INSERT … SELECT
generate_series over 3 sources, 40 origins, 60 exception types and the four statuses, every index in place (the
trigram one included where pg_trgm exists). Requests go through Django's test Client in this process (server time,
no network); the ratio is against GET /api/v1/me measured in the same run.
"""

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import benchdb  # noqa: E402  (bench/ is on sys.path as the script directory)

DB = os.environ.get("BENCH_DB", "sy_bench_inbox")
TARGET_MS = 150

SEED = """
INSERT INTO dlq_deadletter (source_id, origin, message_id, partition, "offset", headers, body, body_size, body_text,
    content_type, message_type, exception_type, exception_message, stacktrace, reason, correlation_id, parse_error,
    first_failure_at, last_failure_at, delivery_count, fingerprint, status, replay_count, ingested_at)
SELECT (%(sources)s::int[])[1 + mod(g, 3)],
       'svc-' || mod(g, 40),
       mod(g, 12) || ':' || g, mod(g, 12), g,
       jsonb_build_object('x-exception-type', 'E' || mod(g, 60), 'tenant', 't' || mod(g, 500)),
       convert_to('{"order": ' || g || ', "sku": "SKU-' || mod(g, 1000) || '"}', 'UTF8'), 40,
       '{"order": ' || g || ', "sku": "SKU-' || mod(g, 1000) || '"}',
       'application/json', 'OrderPlaced' || mod(g, 8), 'com.acme.E' || mod(g, 60),
       'payment ' || mod(g, 997) || ' declined by gateway ' || mod(g, 13), '', '', 'ORD-' || g, '',
       now() - make_interval(secs => (%(n)s - g) * 0.5), now() - make_interval(secs => (%(n)s - g) * 0.5), 3,
       md5('E' || mod(g, 60) || 'svc-' || mod(g, 40))::varchar(16),
       (ARRAY['new','new','new','new','new','new','replayed','archived','archived','discarded'])[1 + mod(g * 7, 10)],
       0, now() - make_interval(secs => (%(n)s - g) * 0.5)
FROM generate_series(1, %(n)s) g
"""


def measure(client, url: str, query: dict | None = None, runs: int = 20) -> tuple[float, float, int, float]:
    """p50 and p95 of the server time (ms), the query count, and the median database time (ms) of one request
    (as bench/sagas.py measures its list)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    times, db_times, queries = [], [], 0
    client.get(url, query or {})  # warm-up (plans, caches)
    for _ in range(runs):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(url, query or {})
            times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, query, response.status_code)
        queries = len(captured)
        db_times.append(sum(float(q["time"]) for q in captured.captured_queries) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1], queries, statistics.median(db_times)


def seed(n: int) -> list[int]:
    from django.db import connection

    from dlq.models import DeadLetterSource

    sources = [
        DeadLetterSource.objects.create(broker=broker, destination=f"orders.{broker}.DLQ")
        for broker in ("kafka", "sqs", "rabbitmq")
    ]
    started = time.perf_counter()
    with connection.cursor() as cursor:
        for start in range(0, n, 250_000):  # in chunks: one statement's WAL and memory stay bounded
            chunk = min(250_000, n - start)
            cursor.execute(
                SEED.replace("generate_series(1, %(n)s) g", f"generate_series({start + 1}, {start + chunk}) g"),
                {"n": n, "sources": [s.pk for s in sources]},
            )
        cursor.execute("ANALYZE dlq_deadletter")
        # What autovacuum's autosummarize does for an inbox filled over time: the block ranges of the time index are
        # summarized (an unsummarized range matches every window).
        cursor.execute("SELECT brin_summarize_new_values('dlq_failure_brin')")
    print(f"seeded {n:,} dead letters in {time.perf_counter() - started:.1f} s")
    return [s.pk for s in sources]


def sizes() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_size_pretty(pg_table_size('dlq_deadletter')), pg_size_pretty(pg_indexes_size('dlq_deadletter')),"
            " pg_size_pretty(pg_total_relation_size('dlq_deadletter'))"
        )
        table, indexes, total = cursor.fetchone()
    print(f"dlq_deadletter: table {table}, indexes {indexes}, total {total}")


def run(n: int) -> None:
    from django.contrib.auth.models import Group, User
    from django.test import Client
    from django.utils import timezone

    sources = seed(n)
    sizes()
    user = User.objects.create_user("bench")
    user.groups.add(Group.objects.get_or_create(name="viewer")[0])
    client = Client()
    client.force_login(user)
    base50, base95, baseq, _ = measure(client, "/api/v1/me")
    print(f"baseline GET /api/v1/me: p50 {base50:.1f} ms, p95 {base95:.1f} ms, {baseq} queries")
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (shared machine)")
    mid = timezone.now() - timedelta(seconds=n // 4)
    filters = {
        "no filter": {},
        "status=archived": {"status": "archived"},
        "source": {"source": str(sources[1])},
        "connection=rabbitmq": {"connection": "rabbitmq"},
        "origin": {"origin": "svc-7"},
        "exception_type": {"exception_type": "com.acme.E17"},
        "message_type": {"message_type": "OrderPlaced3"},
        "group (fingerprint)": {"group": _fingerprint()},
        "correlation_id": {"correlation_id": f"ORD-{n // 2}"},
        "message_id": {"message_id": f"{(n // 2) % 12}:{n // 2}"},
        "since/until (1 h)": {"since": (mid - timedelta(hours=1)).isoformat(), "until": mid.isoformat()},
        "header tenant=t42": {"header": "tenant=t42"},
        "full text q=SKU-421": {"q": "SKU-421"},
        "exception_message ~ 'gateway 7'": {"exception_message": "gateway 7"},
    }
    print(f"\ninbox first page (GET /dead-letters/, 50 rows), {n:,} dead letters — target p95 ≤ {TARGET_MS} ms")
    print(f"{'filter':34} {'p50 ms':>8} {'p95 ms':>8} {'queries':>8} {'db ms':>6} {'p95/baseline':>13}  target")
    for name, query in filters.items():
        p50, p95, q, db = measure(client, "/dead-letters/", query, runs=20)
        verdict = "OK" if p95 <= TARGET_MS else "MISSED"
        print(f"{name:34} {p50:8.1f} {p95:8.1f} {q:8d} {db:6.1f} {p95 / base50:12.1f}x  {verdict}")


def _fingerprint() -> str:
    from dlq.models import DeadLetter

    return DeadLetter.objects.values_list("fingerprint", flat=True).first()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dead-letters", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    benchdb.recreate_database(DB)
    try:
        benchdb.setup_django(DB)
        run(args.dead_letters)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            benchdb.drop_database(DB)


if __name__ == "__main__":
    main()
