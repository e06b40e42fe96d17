"""The inbox filters by exception message (contains, any case), broker message id and correlation id (exactly), and
has a field for the exception type: on the page, in the API, in "replay all matching" — each through an index."""

import re
from datetime import UTC, datetime

import pytest
from django.db import connection

from dlq import filters
from dlq.models import DeadLetter, DeadLetterSource
from tests.dlq.test_inbox import _store


@pytest.fixture
def source(db):
    return DeadLetterSource.objects.create(broker="kafka", destination="orders.DLQ")


@pytest.fixture
def letters(source):
    """Five dead letters with messages and correlation ids, message ids 0:0 … 0:4."""
    rows = _store(source, 5)
    facts = [
        ("Connection REFUSED by payments:443", "c-1", "app.Boom"),
        ("connection refused by ledger", "c-2", "app.Boom"),
        ("timed out after 30 s", "", "app.Boom"),
        ("100% of quota used", "c-1", "app.Other"),
        ("1000 of quota used", "", "app.Other"),
    ]
    for dl, (message, correlation, exception_type) in zip(rows, facts, strict=True):
        DeadLetter.objects.filter(pk=dl.pk).update(
            exception_message=message, correlation_id=correlation, exception_type=exception_type
        )
    return rows


def _ids(client, query: str) -> list[int]:
    response = client.get(f"/api/v1/dead-letters?{query}")
    assert response.status_code == 200, response.content
    return sorted(d["id"] for d in response.json()["dead_letters"])


def test_it_finds_dead_letters_by_exception_message_message_id_and_correlation_id(source, letters, world):
    client = world.client(world.viewer)
    ids = [dl.pk for dl in letters]
    assert _ids(client, "exception_message=refused+BY") == ids[:2]
    assert _ids(client, "exception_message=0%25+of") == [ids[3]]  # % is a character here, not a wildcard
    assert _ids(client, "correlation_id=c-1") == [ids[0], ids[3]]
    assert _ids(client, "exception_type=app.Other") == ids[3:]
    assert _ids(client, "correlation_id=c-1&exception_type=app.Other") == [ids[3]]

    other = DeadLetterSource.objects.create(broker="kafka", destination="billing.DLQ")
    (twin,) = _store(other, 1, start=2)  # the same broker id, 0:2, in another DLQ
    assert _ids(client, "message_id=0:2") == [ids[2], twin.pk]
    assert _ids(client, f"message_id=0:2&source={other.pk}") == [twin.pk]
    assert _ids(client, "message_id=0:99") == []

    short = client.get("/api/v1/dead-letters?exception_message=ab")
    assert short.status_code == 400
    assert short.json()["fields"] == {"exception_message": ["give at least 3 characters"]}


def test_it_searches_on_the_inbox_page_and_keeps_a_rejected_filter_in_its_field(source, letters, world):
    client = world.client(world.operator)
    html = client.get("/dead-letters/?exception_message=refused&correlation_id=c-2").content.decode()
    assert re.findall(r'id="dl-(\d+)"', html) == [str(letters[1].pk)]
    for name, value in (("exception_message", "refused"), ("correlation_id", "c-2"), ("exception_type", "")):
        assert f'name="{name}" value="{value}"' in html
    assert '<input type="hidden" name="correlation_id" value="c-2">' in html  # "replay all matching" carries it

    bad = client.get("/dead-letters/?exception_message=ab&message_id=0:1").content.decode()
    assert 'data-testid="filter-error"' in bad and "exception_message: give at least 3 characters" in bad
    assert 'name="exception_message" value="ab"' in bad and 'name="message_id" value="0:1"' in bad
    assert 'data-testid="dl-row"' not in bad and 'data-testid="replay-form"' not in bad  # not everything instead


def test_it_swaps_the_whole_result_on_a_filter_and_only_rows_for_older(source, letters, world):
    client = world.client(world.operator)
    DeadLetter.objects.filter(pk=letters[0].pk).update(status="archived", status_changed_at=datetime.now(UTC))
    results = client.get("/dead-letters/?status=archived", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="dl-results")
    html = results.content.decode()
    assert 'data-testid="restore-button"' in html and 'data-testid="total">1 matching' in html
    assert '<form method="get"' not in html  # the filter form itself stays as typed
    rows = client.get("/dead-letters/?status=archived", HTTP_HX_REQUEST="true").content.decode()
    assert 'data-testid="dl-row"' in rows and 'data-testid="total"' not in rows


def test_it_replays_all_matching_a_correlation_id(source, letters, world):
    html = world.client(world.operator).post("/dead-letters/replay/preview", {"correlation_id": "c-1", "status": "new"})
    html = html.content.decode()
    assert "Replay 2 dead letters" in html
    assert f'href="/dead-letters/{letters[0].pk}/"' in html and f'href="/dead-letters/{letters[3].pk}/"' in html


def test_it_looks_each_search_up_through_an_index(source, world):
    DeadLetterSource.objects.create(broker="sqs", destination="billing-dlq")
    now = datetime.now(UTC)
    DeadLetter.objects.bulk_create(
        DeadLetter(
            source=source,
            message_id=f"1:{i}",
            exception_message=f"connection refused by host-{i}",
            correlation_id=f"c-{i}" if i % 2 else "",
            first_failure_at=now,
            last_failure_at=now,
            fingerprint="f",
        )
        for i in range(2000)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE dlq_deadletter")
        # A few thousand rows fit in a page or two, so a seq scan is cheapest: what matters is that the index can
        # serve the query as written (a mismatched expression would leave only the seq scan, disabled or not).
        cursor.execute("SET LOCAL enable_seqscan = off")
    for f, index in (
        ({"exception_message": "HOST-1242"}, "dlq_exception_message_trgm"),
        # One lookup per source, not a read of the whole (source, message_id) index:
        ({"message_id": "1:1242"}, "Index Cond: ((source_id = ANY ('{"),
        ({"correlation_id": "c-1243"}, "dlq_correlation"),
    ):
        sql, params = filters.apply(DeadLetter.objects.all(), filters.clean(f)).values("id").query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN " + sql, params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        assert index in plan and "Seq Scan" not in plan, plan
