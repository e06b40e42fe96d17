"""Finding failed sagas by step and error: the list, the API, live rows and bulk selections filter on them, and the
Failures view groups what waits on an operator by (type, status, step, error type)."""

from datetime import timedelta

from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connection, transaction

from sagas import actions, queries
from sagas.consumers import SagasConsumer
from sagas.models import SagaInstance
from sagas.recording import record_events, validate_event
from tests.sagas.helpers import T0, ev


def _record(*events):
    record_events([validate_event(e)[0] for e in events])


def _at(seconds: int) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def _failed(saga_id, step, error_type, at, saga_type="order"):
    """A saga that reserved, then failed at `step` (with no error object when error_type is None)."""
    extra = {"error": {"type": error_type, "message": "no"}} if error_type is not None else {}
    _record(
        ev(saga_id, "reserve", seq=1, saga_type=saga_type, occurred_at=_at(at - 1)),
        ev(saga_id, step, status="failed", seq=2, saga_type=saga_type, occurred_at=_at(at), **extra),
    )


def _seed():
    _failed("f1", "charge", "Declined", 10)
    _failed("f2", "charge", "Declined", 20)
    _failed("f3", "charge", "Timeout", 30)
    _failed("f4", "charge", "Declined", 40, saga_type="refund")
    _failed("f5", "charge", None, 50)  # failed without naming an error type
    _failed("f6", "ship", "Declined", 55)
    # Compensation failed: the step it stopped at is the compensated one, and its error is the compensation's.
    _failed("c1", "charge", "Declined", 60)
    _record(ev("c1", "reserve", "compensate", "failed", seq=3, occurred_at=_at(61), error={"type": "RefundError"}))
    # Retried after failing: running now, but its latest failed event still says Declined.
    _failed("r1", "charge", "Declined", 70)
    _record(ev("r1", "charge", status="started", seq=3, attempt=2, occurred_at=_at(71)))
    _record(ev("ok1", "reserve", seq=1, occurred_at=_at(80)), ev("ok1", "charge", seq=2, occurred_at=_at(81)))


def _ids(client, **query) -> set[str]:
    response = client.get("/api/v1/sagas", query)
    assert response.status_code == 200, response.content
    return {s["id"] for s in response.json()["sagas"]}


def test_it_filters_the_api_list_by_step_and_error_type(world):
    _seed()
    api = world.client(world.viewer)
    assert _ids(api, step="charge") == {"f1", "f2", "f3", "f4", "f5", "r1", "ok1"}
    assert _ids(api, error_type="Declined") == {"f1", "f2", "f4", "f6", "r1"}  # any status: r1 failed earlier
    assert _ids(api, error_type="Declined", status="failed", step="charge") == {"f1", "f2", "f4"}
    assert _ids(api, error_type="Declined", status="failed", step="charge", saga_type="refund") == {"f4"}
    assert _ids(api, error_type="RefundError", step="reserve") == {"c1"}
    assert _ids(api, error_type="-", status="failed") == {"f5"}  # "-": failed without an error type
    body = api.get("/api/v1/sagas", {"step": "charge", "error_type": "Timeout"}).json()
    assert [(s["id"], s["current_step"], s["last_error_type"]) for s in body["sagas"]] == [("f3", "charge", "Timeout")]
    bad = api.get("/api/v1/sagas", {"error_type": "x" * 201})
    assert bad.status_code == 400 and "error_type" in bad.json()["fields"]


def test_it_keeps_the_error_type_of_the_latest_failure_in_history_order(world):
    _failed("h1", "charge", "Declined", 10)
    _record(ev("h1", "charge", status="started", seq=3, attempt=2, occurred_at=_at(11)))
    _record(ev("h1", "charge", status="failed", seq=4, attempt=2, occurred_at=_at(12), error={"type": "Timeout"}))
    assert SagaInstance.objects.get(pk="h1").last_error_type == "Timeout"
    # A failure that arrives late but sorts earlier (re-derived from the history) does not replace it.
    _record(ev("h1", "reserve", status="failed", seq=2, occurred_at=_at(9), error={"type": "Stale"}))
    saga = SagaInstance.objects.get(pk="h1")
    assert (saga.status, saga.current_step, saga.last_error_type) == ("failed", "charge", "Timeout")
    # A later failure without a type clears it: the filter is about the latest failure, not any past one.
    _record(ev("h1", "charge", status="failed", seq=5, attempt=3, occurred_at=_at(13)))
    assert SagaInstance.objects.get(pk="h1").last_error_type == ""


def test_it_filters_the_list_page_by_step_and_error_type(world, django_assert_max_num_queries):
    _seed()
    client = world.client(world.operator)
    with django_assert_max_num_queries(8):
        page = client.get("/sagas/", {"status": "failed", "step": "charge", "error_type": "Declined"})
    html = page.content.decode()
    assert page.status_code == 200 and html.count('data-testid="saga-row"') == 3
    for saga_id in ("f1", "f2", "f4"):
        assert f">{saga_id}</a>" in html
    assert 'name="step" value="charge"' in html and 'name="error_type" value="Declined"' in html
    assert html.count('data-testid="error-type">Declined</span>') == 3
    # The bulk form carries the new filters, and the live socket subscribes with them.
    bulk = html.split('data-testid="bulk-form"')[1].split("</form>")[0]
    assert '<input type="hidden" name="step" value="charge">' in bulk
    assert '<input type="hidden" name="error_type" value="Declined">' in bulk
    assert 'ws-connect="/ws/sagas/?status=failed&amp;step=charge&amp;error_type=Declined"' in html


def test_it_freezes_the_step_and_error_filters_into_a_bulk_selection(world):
    _seed()
    client = world.client(world.operator)
    form = {"status": "failed", "step": "charge", "error_type": "Declined", "action": "retry-step"}
    preview = client.post("/sagas/bulk-preview", form).content.decode()
    assert "<strong>3</strong> sagas frozen for <strong>retry-step</strong>" in preview
    selection = preview.split('name="selection" value="')[1].split('"')[0]
    assert set(actions.thaw_selection("retry-step", selection)) == {"f1", "f2", "f4"}
    api = client.post(
        "/api/v1/sagas/bulk/resolve",
        {"preview": True, "note": "n", "filter": {"error_type": "-", "status": "failed"}},
        content_type="application/json",
    ).json()["preview"]
    assert actions.thaw_selection("resolve", api["selection"]) == ["f5"]


def test_it_matches_live_rows_against_step_and_error_type(world):
    _seed()

    def matches(saga_id, **query):
        form = queries.SagaFilterForm(query)
        assert form.is_valid(), form.errors
        return form.matches(SagaInstance.objects.get(pk=saga_id))

    assert matches("f1", step="charge", error_type="Declined")
    assert not matches("f3", step="charge", error_type="Declined")
    assert not matches("f6", step="charge", error_type="Declined")
    assert matches("f5", error_type="-") and not matches("f1", error_type="-")
    assert matches("c1", step="reserve", error_type="RefundError", status="compensation_failed")


def test_it_inserts_only_new_sagas_with_that_step_and_error_on_an_open_list(transactional_db, world):
    async def watch():
        communicator = WebsocketCommunicator(SagasConsumer.as_asgi(), "/ws/sagas/?step=charge&error_type=Declined")
        communicator.scope["user"] = world.operator
        connected, _ = await communicator.connect()
        assert connected

        def post():
            with transaction.atomic():  # one batch, committed: one broadcast for all three new sagas
                _record(
                    ev("live-yes", "charge", status="failed", seq=1, error={"type": "Declined"}),
                    ev("live-other-error", "charge", status="failed", seq=1, error={"type": "Timeout"}),
                    ev("live-other-step", "ship", status="failed", seq=1, error={"type": "Declined"}),
                )

        await sync_to_async(post)()
        first = await communicator.receive_from(timeout=5)
        rest = await communicator.receive_nothing(timeout=1)
        await communicator.disconnect()
        return first, rest

    first, nothing_else = async_to_sync(watch)()
    assert first.startswith('<tbody hx-swap-oob="afterbegin:#saga-rows">') and ">live-yes</a>" in first
    assert nothing_else
    assert 'name="saga_ids" value="live-yes"' in first  # an operator's live row carries its tick box


def test_it_groups_failures_by_type_status_step_and_error(world, django_assert_max_num_queries):
    _seed()
    client = world.client(world.viewer)
    with django_assert_max_num_queries(5):
        html = client.get("/sagas/failures").content.decode()
    rows = [r.split("</tr>")[0] for r in html.split('data-testid="failure-group"')[1:]]
    cells = [[c.split(">", 1)[1].split("</td>")[0] for c in r.split("<td")[1:]] for r in rows]
    summary = [(c[0], c[1].split(">")[1].split("<")[0], c[2], c[3], c[4].split(">")[1].split("<")[0]) for c in cells]
    assert summary == [
        ("order", "failed", "charge", "Declined", "2"),  # biggest group first
        ("order", "compensation_failed", "reserve", "RefundError", "1"),
        ("order", "failed", "charge", "(none named)", "1"),
        ("order", "failed", "charge", "Timeout", "1"),
        ("order", "failed", "ship", "Declined", "1"),
        ("refund", "failed", "charge", "Declined", "1"),
    ]
    assert cells[0][5] == "2026-01-01 12:00:10" and cells[0][6] == "2026-01-01 12:00:20"  # oldest, newest
    assert "r1" not in html and "ok1" not in html  # running sagas wait on nobody

    # Each group links to the list filtered to exactly it, where the bulk actions apply.
    links = [r.split('href="')[1].split('"')[0].replace("&amp;", "&") for r in rows]
    assert links[0] == "/sagas/?saga_type=order&status=failed&step=charge&error_type=Declined"
    operator = world.client(world.operator)
    for link, expected in ((links[0], {"f1", "f2"}), (links[2], {"f5"}), (links[1], {"c1"})):
        page = operator.get(link).content.decode()
        assert page.count('data-testid="saga-row"') == len(expected), link
        assert all(f">{saga_id}</a>" in page for saga_id in expected) and 'data-testid="bulk-form"' in page
    assert 'data-testid="failures-link"' in client.get("/sagas/").content.decode()


def test_it_says_when_nothing_has_failed_and_needs_a_login(world, client):
    _record(ev("fine", "reserve", seq=1))
    assert 'data-testid="no-failures"' in world.client(world.viewer).get("/sagas/failures").content.decode()
    assert client.get("/sagas/failures").status_code in (302, 403)
    assert world.client(world.outsider).get("/sagas/failures").status_code == 403


def _plan(query: dict) -> str:
    form = queries.SagaFilterForm(query)
    assert form.is_valid()
    sql, params = form.filter(SagaInstance.objects.all()).order_by("-updated_at", "-id")[:51].query.sql_with_params()
    with transaction.atomic(), connection.cursor() as cursor:
        # Tiny test tables make a sequential scan cheapest; turned off, the plan shows whether an index applies.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_it_finds_a_failure_group_and_an_error_type_through_their_partial_indexes(world):
    _seed()
    # A failure group's rows come through an index whichever the planner picks among those that apply (its pick
    # follows table statistics and was seen to flip between runs): never a scan of the whole table.
    for group in (
        {"saga_type": "order", "status": "failed", "step": "charge"},
        {"saga_type": "order", "status": "failed", "step": "charge", "error_type": "Declined"},
    ):
        plan = _plan(group)
        assert "Index" in plan and "Seq Scan" not in plan, plan
    # The error type alone: only the partial saga_error index has it first.
    assert "saga_error" in _plan({"error_type": "Declined"})


def test_it_fills_in_the_error_type_of_sagas_recorded_before_the_column(world):
    import importlib

    backfill = importlib.import_module("sagas.migrations.0003_failure_lookup").BACKFILL
    _seed()
    # A failure without seq sorts after every sequenced one in the history: it is the latest.
    _record(ev("n1", "charge", status="failed", seq=5, occurred_at=_at(90), error={"type": "Declined"}))
    _record(ev("n1", "charge", status="failed", occurred_at=_at(1), error={"type": "Unsequenced"}))
    derived = dict(SagaInstance.objects.values_list("pk", "last_error_type"))
    assert derived["n1"] == "Unsequenced" and derived["c1"] == "RefundError" and derived["r1"] == "Declined"
    SagaInstance.objects.update(last_error_type="")
    with connection.cursor() as cursor:
        cursor.execute(backfill)
    assert dict(SagaInstance.objects.values_list("pk", "last_error_type")) == derived
