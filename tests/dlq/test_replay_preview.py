"""Replay from the pages goes through a preview: the target set frozen with its count and a sample, what to know
first (sagas no longer running, the loop guard), then a start on exactly that set, to the origin or a chosen
destination."""

import re

import pytest
from django.utils import timezone

from console.models import Operation
from dlq import actions
from dlq.models import DeadLetter, DeadLetterSource
from sagas.models import SagaInstance
from tests.dlq.test_inbox import _store


@pytest.fixture
def source(db):
    return DeadLetterSource.objects.create(broker="kafka", destination="orders.DLQ")


def _selection(html: str) -> str:
    return re.search(r'name="selection" value="([^"]+)"', html).group(1)


def _saga(saga_id: str, correlation: str, status: str) -> SagaInstance:
    now = timezone.now()
    return SagaInstance.objects.create(
        id=saga_id,
        saga_type="checkout",
        correlation_id=correlation,
        status=status,
        started_at=now,
        updated_at=now,
        state_since=now,
    )


def test_it_previews_a_group_then_replays_exactly_the_frozen_set(source, world):
    _store(source, 7)
    group = DeadLetter.objects.first().fingerprint
    operator = world.client(world.operator)

    response = operator.post("/dead-letters/replay/preview", {"group": group, "status": "new", "rate": "15"})
    html = response.content.decode()
    assert response.status_code == 200 and 'data-testid="replay-preview"' in html
    assert "Replay 7 dead letters" in html and "and 2 more" in html  # a sample of five
    assert 'value="15"' in html  # the rate typed in the group row carries over
    assert 'data-testid="replay-saga-warning"' not in html and 'data-testid="replay-loop-warning"' not in html

    _store(source, 3, start=100)  # arrives after the preview: not part of what was shown
    started = operator.post(
        "/dead-letters/replay",
        {"selection": _selection(html), "reason": "fixed", "idempotency_key": "prev-1", "rate": "15"},
    )
    op = Operation.objects.get(idempotency_key="prev-1")
    assert started.status_code == 302 and started["Location"] == f"/operations/{op.pk}/"
    frozen = sorted(DeadLetter.objects.order_by("id").values_list("id", flat=True)[:7])
    assert sorted(op.parameters["ids"]) == frozen and op.parameters["rate"] == 15


def test_it_warns_about_dead_letters_of_sagas_that_are_no_longer_running(source, world):
    rows = _store(source, 4)
    for row, correlation in zip(rows, ["c-done", "c-undone", "c-live", ""], strict=True):
        DeadLetter.objects.filter(pk=row.pk).update(correlation_id=correlation)
    _saga("saga-done", "c-done", "completed")
    _saga("saga-undone", "c-undone", "compensated")
    _saga("saga-live", "c-live", "running")

    html = world.client(world.operator).post("/dead-letters/replay/preview", {"ids": [r.pk for r in rows]}).content
    html = html.decode()

    warning = re.search(r'data-testid="replay-saga-warning">(.*?)</div>', html, re.S).group(1)
    assert "2 of these belong to sagas that are no longer running" in warning
    assert "those sagas: 1 compensated, 1 completed" in warning
    assert 'href="/sagas/saga-done/"' in warning and 'href="/sagas/saga-undone/"' in warning
    assert "saga-live" not in warning


def test_it_shows_the_loop_guard_and_starts_only_with_the_override(source, world, settings):
    rows = _store(source, 2)
    DeadLetter.objects.filter(pk=rows[0].pk).update(replay_count=settings.DLQ_MAX_REPLAYS)
    operator = world.client(world.operator)
    html = operator.post("/dead-letters/replay/preview", {"ids": [r.pk for r in rows]}).content.decode()
    assert 'data-testid="replay-loop-warning"' in html and 'name="override_loop_guard"' in html

    form = {"selection": _selection(html), "reason": "again", "idempotency_key": "loop-1"}
    refused = operator.post("/dead-letters/replay", form, follow=True)
    assert "already replayed" in refused.content.decode() and not Operation.objects.filter(idempotency_key="loop-1")
    operator.post("/dead-letters/replay", {**form, "idempotency_key": "loop-2", "override_loop_guard": "on"})
    assert Operation.objects.get(idempotency_key="loop-2").parameters["override_loop_guard"] is True


def test_it_replays_to_a_chosen_destination(source, world):
    rows = _store(source, 2)
    operator = world.client(world.operator)
    html = operator.post("/dead-letters/replay/preview", {"ids": [r.pk for r in rows]}).content.decode()
    assert '<option value="kafka:default">kafka:default</option>' in html

    form = {"selection": _selection(html), "reason": "elsewhere", "idempotency_key": "dest-1"}
    operator.post("/dead-letters/replay", {**form, "broker": "kafka", "destination": "orders.retry"})
    params = Operation.objects.get(idempotency_key="dest-1").parameters
    assert (params["broker"], params["destination"]) == ("kafka:default", "orders.retry")
    bad = {**form, "idempotency_key": "dest-2", "broker": "nope", "destination": "x"}
    bad = operator.post("/dead-letters/replay", bad)
    assert bad.status_code == 302 and not Operation.objects.filter(idempotency_key="dest-2").exists()


def test_it_refuses_a_tampered_selection_and_an_empty_preview(source, world):
    rows = _store(source, 1)
    operator = world.client(world.operator)
    html = operator.post("/dead-letters/replay/preview", {"ids": [rows[0].pk]}).content.decode()
    tampered = _selection(html)[:-2] + "xx"
    response = operator.post(
        "/dead-letters/replay", {"selection": tampered, "reason": "r", "idempotency_key": "t-1"}, follow=True
    )
    assert "preview again" in response.content.decode() and not Operation.objects.exists()

    empty = operator.post("/dead-letters/replay/preview", {"group": "no-such-group", "status": "new"}).content.decode()
    assert 'data-testid="replay-preview-error"' in empty and "No dead letters to replay" in empty
    assert actions.thaw_selection(_selection(html)) == [rows[0].pk]


def test_it_sends_a_refused_replay_back_to_its_page_but_never_off_site(source, world):
    operator = world.client(world.operator)
    form = {"selection": "bogus", "reason": "r", "idempotency_key": "back-1"}
    groups = operator.post("/dead-letters/replay", form, HTTP_REFERER="http://testserver/dead-letters/groups/")
    assert groups.status_code == 302 and groups["Location"] == "http://testserver/dead-letters/groups/"
    evil = operator.post("/dead-letters/replay", form, HTTP_REFERER="https://evil.example/phish")
    assert evil.status_code == 302 and evil["Location"] == "/dead-letters/"
