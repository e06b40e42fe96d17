"""The list and the timeline: filters, keyset pages, a total (counted when small), bounded queries, API parity."""

import json
from datetime import timedelta

from django.utils import timezone

from console.dashboard import tiles
from sagas.models import CompensationRoute, SagaInstance, SagaStepEvent
from sagas.recording import record_events, validate_event
from tests.sagas.helpers import ev


def _record(*events):
    record_events([validate_event(e)[0] for e in events])


def _seed():
    now = timezone.now()
    for i in range(30):
        status = "failed" if i % 3 == 0 else "succeeded"
        saga_type = "order" if i % 2 else "refund"
        when = (now - timedelta(minutes=60 - i)).isoformat()
        _record(
            ev(
                f"s{i:02}",
                "reserve",
                status=status,
                seq=1,
                saga_type=saga_type,
                correlation_id=f"ORD-{i:02}",
                occurred_at=when,
            )
        )


def test_it_filters_by_type_status_and_correlation(world):
    _seed()
    api = world.client(world.viewer)

    def ids(**query):
        return {s["id"] for s in api.get("/api/v1/sagas", query).json()["sagas"]}

    assert ids(status="failed") == {f"s{i:02}" for i in range(0, 30, 3)}
    assert ids(saga_type="order", status="failed") == {f"s{i:02}" for i in range(3, 30, 6)}
    assert ids(correlation="ORD-07") == {"s07"}
    assert ids(correlation_prefix="ORD-1") == {f"s{i}" for i in range(10, 20)}
    cutoff = (timezone.now() - timedelta(minutes=40, seconds=30)).isoformat()
    assert ids(started_after=cutoff) == {f"s{i:02}" for i in range(20, 30)}
    assert ids(updated_before=cutoff) == {f"s{i:02}" for i in range(0, 20)}
    assert api.get("/api/v1/sagas", {"status": "bogus"}).status_code == 400


def test_it_finds_stuck_sagas(world):
    _seed()  # running sagas, in state for 31 to 60 minutes
    api = world.client(world.viewer)
    stuck = {s["id"] for s in api.get("/api/v1/sagas", {"stuck_minutes": 45}).json()["sagas"]}
    assert stuck == {f"s{i:02}" for i in range(0, 15) if i % 3}  # running only: failed ones wait for an operator
    assert any(t.name == "sagas-failed" and t.value == "10" for t in tiles())


def test_it_pages_by_keyset_newest_update_first(world, settings):
    _seed()
    api = world.client(world.viewer)
    from sagas import queries

    seen, cursor = [], None
    original = queries.PAGE_SIZE
    queries.PAGE_SIZE = 12
    try:
        while True:
            body = api.get("/api/v1/sagas", {"cursor": cursor} if cursor else {}).json()
            seen += [s["id"] for s in body["sagas"]]
            cursor = body["next_cursor"]
            if not cursor:
                break
    finally:
        queries.PAGE_SIZE = original
    assert seen == [f"s{i:02}" for i in reversed(range(30))]
    assert body["estimated_total"] == 30 and body["total_is_estimate"] is False  # small: counted exactly


def test_it_lists_through_the_api_with_a_bounded_number_of_queries(world, django_assert_max_num_queries):
    _seed()
    client = world.client(world.viewer)
    with django_assert_max_num_queries(6):
        body = client.get("/api/v1/sagas").json()
    assert len(body["sagas"]) == 30 and "context" not in body["sagas"][0]


def test_it_renders_the_list_with_a_bounded_number_of_queries(world, django_assert_max_num_queries):
    _seed()
    client = world.client(world.viewer)
    with django_assert_max_num_queries(8):
        page = client.get("/sagas/", {"status": "failed"})
    html = page.content.decode()
    assert page.status_code == 200 and html.count('data-testid="saga-row"') == 10
    assert html.index('<th class="num">In state for</th><th>Status</th>') > 0  # time-in-state comes first
    assert 'ws-connect="/ws/sagas/?status=failed"' in html and 'data-testid="live-toggle"' in html
    fragment = client.get("/sagas/", {"status": "failed"}, headers={"HX-Request": "true"}).content.decode()
    assert "<html" not in fragment and fragment.count('data-testid="saga-row"') == 10


def test_it_pages_a_long_timeline_with_two_lanes(world, django_assert_max_num_queries):
    events = [ev("big", f"step{i}", status="succeeded", seq=i) for i in range(1, 231)]
    events.append(
        ev(
            "big",
            "step230",
            status="failed",
            seq=231,
            error={"type": "E", "message": "bad", "traceback": "Traceback: line 1"},
        )
    )
    events.append(ev("big", "step229", direction="compensate", status="started", seq=232))
    _record(*events)
    client = world.client(world.operator)
    with django_assert_max_num_queries(12):
        first = client.get("/sagas/big/").content.decode()
    assert first.count('data-testid="event"') == 100 and "later →" in first
    last = client.get("/sagas/big/", {"page": 3}).content.decode()
    assert last.count('data-testid="event"') == 32
    assert "lane-compensate" in last and "<summary>traceback</summary>" in last
    failed = client.get("/sagas/big/", {"failed_only": "1"}).content.decode()
    assert failed.count('data-testid="event"') == 1
    api = client.get("/api/v1/sagas/big", {"page": 3}).json()
    assert len(api["events"]) == 32 and api["next_page"] is None and api["status"] == "compensating"
    assert SagaInstance.objects.get(pk="big").event_count == SagaStepEvent.objects.filter(saga_id="big").count()


def test_it_previews_compensation_on_the_page(world):
    _record(ev("p1", "a", seq=1), ev("p1", "b", seq=2), ev("p1", "c", status="failed", seq=3))
    without_route = world.client(world.operator).get("/sagas/p1/").content.decode()
    assert 'data-testid="action-compensate"' not in without_route  # nowhere to send the command yet
    CompensationRoute.objects.create(saga_type="order", broker="kafka", destination="order.commands")
    html = world.client(world.operator).get("/sagas/p1/").content.decode()
    assert 'data-testid="action-compensate"' in html and 'data-testid="action-resolve"' in html
    assert "<li>b</li><li>a</li>" in html
    preview = world.client(world.operator).get("/sagas/p1/preview", {"step": "a"}).content.decode()
    assert "step(s) b after a completed" in preview
    assert world.client(world.viewer).get("/sagas/p1/preview").status_code == 403


def test_it_previews_compensation_of_a_saga_called_bulk(world):
    """The bulk-action routes once lived at /sagas/bulk/…, where a saga with the id "bulk" had its preview."""
    _record(ev("bulk", "a", seq=1), ev("bulk", "b", seq=2), ev("bulk", "c", status="failed", seq=3))
    CompensationRoute.objects.create(saga_type="order", broker="kafka", destination="order.commands")
    assert world.client(world.operator).get("/sagas/bulk/").status_code == 200
    preview = world.client(world.operator).get("/sagas/bulk/preview", {"step": "a"})
    assert preview.status_code == 200 and "step(s) b after a completed" in preview.content.decode()


def test_it_previews_and_starts_a_bulk_action_from_the_list(world):
    _seed()
    client = world.client(world.operator)
    assert 'data-testid="bulk-form"' in client.get("/sagas/", {"status": "failed"}).content.decode()
    preview = client.post("/sagas/bulk-preview", {"status": "failed", "action": "resolve"}).content.decode()
    assert "<strong>10</strong> sagas frozen for <strong>resolve</strong>" in preview
    selection = preview.split('name="selection" value="')[1].split('"')[0]
    started = client.post(
        "/sagas/bulk-start",
        {"selection": selection, "action": "resolve", "note": "n", "reason": "r", "idempotency_key": "bk"},
    ).content.decode()
    assert 'data-testid="action-started"' in started
    from console.models import Operation

    assert len(Operation.objects.get(idempotency_key="bk").parameters["saga_ids"]) == 10
    assert 'data-testid="bulk-form"' not in world.client(world.viewer).get("/sagas/").content.decode()


def test_it_shows_the_sagas_data_escaped_in_a_collapsible_panel(world):
    hostile = {"note": "<script>alert(1)</script>", "<img src=x onerror=alert(2)>": ["a & b", "ünï"]}
    _record(ev("d1", "reserve", seq=1, context=hostile))
    html = world.client(world.viewer).get("/sagas/d1/").content.decode()
    panel = html.split('<details class="saga-data" data-testid="saga-data">')[1].split("</details>")[0]
    assert "<summary>Data" in panel
    assert "&quot;note&quot;: &quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;" in panel
    assert "&lt;img src=x onerror=alert(2)&gt;" in panel and "a &amp; b" in panel and "ünï" in panel
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert 'data-testid="saga-data-cut"' not in panel


def test_it_cuts_a_large_context_and_points_to_the_json_api(world, settings):
    settings.SAGA_CONTEXT_MAX_BYTES = 100_000
    _record(ev("d2", "reserve", seq=1, context={"lines": [f"item {i:05}" for i in range(3000)]}))
    html = world.client(world.viewer).get("/sagas/d2/").content.decode()
    note = html.split('data-testid="saga-data-cut">')[1].split("</p>")[0]
    whole = len(json.dumps(SagaInstance.objects.get(pk="d2").context, indent=2, ensure_ascii=False))
    assert f"Showing the first 20000 of {whole} characters" in note
    assert 'href="/api/v1/sagas/d2"' in note
    shown = html.replace("&quot;", '"')
    assert '"item 00010"' in shown and '"item 02999"' not in shown  # the start is shown, the end is cut
    settings.SAGA_CONTEXT_MAX_BYTES = 256
    _record(ev("d3", "reserve", seq=1, context={"blob": "x" * 1000}))
    dropped = world.client(world.viewer).get("/sagas/d3/").content.decode()
    assert "The producer sent 1011 bytes of data, over the 256-byte limit" in dropped


def test_it_previews_a_bulk_action_for_ticked_sagas(world):
    _seed()
    client = world.client(world.operator)
    html = client.get("/sagas/", {"status": "failed"}).content.decode()
    assert html.count('name="saga_ids"') == 10 and 'form="bulk-selected"' in html
    assert 'id="bulk-selected"' in html and 'data-testid="select-all"' in html
    assert 'name="saga_ids"' not in world.client(world.viewer).get("/sagas/").content.decode()
    ticked = {"target": "selected", "action": "resolve", "saga_ids": ["s03", "s00", "s03", "gone"]}
    preview = client.post("/sagas/bulk-preview", ticked).content.decode()
    assert "<strong>2</strong> sagas frozen for <strong>resolve</strong>" in preview
    selection = preview.split('name="selection" value="')[1].split('"')[0]
    started = client.post(
        "/sagas/bulk-start",
        {"selection": selection, "action": "resolve", "note": "n", "reason": "r", "idempotency_key": "tick"},
    ).content.decode()
    assert 'data-testid="action-started"' in started
    from console.models import Operation

    assert Operation.objects.get(idempotency_key="tick").parameters["saga_ids"] == ["s03", "s00"]
    # Nothing ticked is an error, never "everything" (the selected form sends no filter).
    empty = client.post("/sagas/bulk-preview", {"target": "selected", "action": "resolve"}).content.decode()
    assert "Tick at least one saga" in empty and 'name="selection"' not in empty
    assert world.client(world.viewer).post("/sagas/bulk-preview", ticked).status_code == 403


def test_it_names_the_mistyped_filter_field_of_a_bulk_preview(world):
    """The bulk preview reads its input through BulkPreviewForm and the list's SagaFilterForm (issue 15): a filter
    that does not parse is named by its field, not "Choose a valid filter."."""
    _seed()
    client = world.client(world.operator)

    html = client.post("/sagas/bulk-preview", {"action": "resolve", "started_after": "last tuesday"}).content.decode()
    unknown = client.post("/sagas/bulk-preview", {"action": "reboot", "status": "failed"}).content.decode()

    assert "started after: Enter a valid date/time." in html and 'name="selection"' not in html
    assert "Choose an action." in unknown and 'name="selection"' not in unknown
