"""Totals above the lists never contradict the page: small ones are counted, large ones estimated but never below
what was counted (a freshly filled table's statistics once said "about 30" above 50 rows)."""

import re

from django.db import connection
from django.utils import timezone

from console import counts
from dlq.models import DeadLetter, DeadLetterSource
from sagas.models import SagaInstance


def _sagas(n: int) -> None:
    now = timezone.now()
    SagaInstance.objects.bulk_create(
        SagaInstance(id=f"c{i:04}", saga_type="order", status="failed", started_at=now, updated_at=now, state_since=now)
        for i in range(n)
    )


def _dead_letters(n: int) -> None:
    source = DeadLetterSource.objects.create(broker="kafka", destination="orders.DLQ")
    now = timezone.now()
    DeadLetter.objects.bulk_create(
        DeadLetter(source=source, origin="orders", message_id=f"0:{i}", body=b"{}", first_failure_at=now,
                   last_failure_at=now, fingerprint="f")
        for i in range(n)
    )  # fmt: skip


def _stale_statistics(table: str) -> None:
    """What a fresh demo has: the planner believes the table (nearly) empty."""
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {table}")  # noqa: S608 - a table name of ours


def test_it_counts_a_small_saga_list_exactly(world):
    _stale_statistics(SagaInstance._meta.db_table)  # analysed while empty: the estimate says ~0 or so
    _sagas(60)
    body = world.client(world.viewer).get("/api/v1/sagas", {"status": "failed"}).json()
    assert len(body["sagas"]) == 50
    assert body["estimated_total"] == 60 and body["total_is_estimate"] is False
    page = world.client(world.viewer).get("/sagas/?status=failed").content.decode()
    assert re.search(r'data-testid="estimate">60 matching<', page), page[:3000]


def test_it_never_estimates_a_saga_list_below_the_rows_it_counted(world, monkeypatch):
    _stale_statistics(SagaInstance._meta.db_table)
    _sagas(60)
    monkeypatch.setattr(counts, "EXACT_UP_TO", 20)  # a "large" table at test scale
    body = world.client(world.viewer).get("/api/v1/sagas").json()
    assert body["total_is_estimate"] is True
    assert body["estimated_total"] >= max(21, len(body["sagas"]))
    page = world.client(world.viewer).get("/sagas/").content.decode()
    shown = int(re.search(r'data-testid="estimate">about (\d+) matching<', page).group(1))
    assert shown >= page.count('data-testid="saga-row"') and shown >= 21


def test_it_counts_a_small_dead_letter_inbox_exactly(world):
    _stale_statistics(DeadLetter._meta.db_table)
    _dead_letters(70)
    body = world.client(world.viewer).get("/api/v1/dead-letters").json()
    assert body["total"] == 70 and body["total_is_estimate"] is False
    page = world.client(world.viewer).get("/dead-letters/").content.decode()
    assert re.search(r'data-testid="total">70 matching', page)
