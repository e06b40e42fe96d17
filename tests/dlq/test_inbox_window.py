"""A since/until window in the past over a big inbox: the page comes from the block-range index on the failure time,
not from walking the id index backwards across the newer half of the table (1 s at a million rows; bench/dlq_inbox.py),
and it is the same page, newest first, with the same keyset."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dlq import filters, queries
from dlq.models import DeadLetter, DeadLetterSource

N = 60_000

pytestmark = pytest.mark.django_db


def _seed() -> None:
    source = DeadLetterSource.objects.create(broker="kafka", destination="orders.DLQ")
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO dlq_deadletter (source_id, origin, message_id, headers, body_size, body_text, content_type,
                message_type, exception_type, exception_message, stacktrace, reason, correlation_id, parse_error,
                first_failure_at, last_failure_at, fingerprint, status, replay_count, ingested_at)
            SELECT %s, 'orders', '0:' || g, '{}', 0, '', '', '', 'E', '', '', '', '', '',
                   now() - make_interval(secs => (%s - g)), now() - make_interval(secs => (%s - g)), 'f', 'new', 0,
                   now()
            FROM generate_series(1, %s) g
            """,
            [source.pk, N, N, N],
        )
        cursor.execute("ANALYZE dlq_deadletter")
        cursor.execute("SELECT brin_summarize_new_values('dlq_failure_brin')")


def test_it_reads_a_past_window_through_the_time_index_and_pages_it_newest_first():
    _seed()
    until = timezone.now() - timezone.timedelta(seconds=N // 2)
    since = until - timezone.timedelta(minutes=10)
    f = filters.clean({"since": since.isoformat(), "until": until.isoformat()})
    window = DeadLetter.objects.filter(last_failure_at__gte=since, last_failure_at__lt=until)
    expected = list(window.order_by("-id").values_list("id", flat=True))
    assert 590 <= len(expected) <= 610

    rows, before = queries.inbox(f)
    assert [r.pk for r in rows] == expected[:50] and before == expected[49]
    rows, _ = queries.inbox(f, before)
    assert [r.pk for r in rows] == expected[50:100]

    with CaptureQueriesContext(connection) as captured:
        queries.inbox(f)
    page = captured.captured_queries[-1]["sql"]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + page)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "dlq_failure_brin" in plan and "Index Scan Backward" not in plan, plan
