"""Recording from any language: POST /api/v1/saga-events, idempotent, order-tolerant, with clear errors."""

from django.test import Client

from console import operations
from console.models import Operation
from sagas.models import SagaInstance, SagaStepEvent
from tests.sagas.helpers import act, ev, post_events


def test_it_records_one_event_and_derives_the_instance(world):
    token = world.token(world.operator)
    body = ev("s1", "reserve", status="started", seq=1, correlation_id="ORD-1", context={"order": 1})
    response = post_events(Client(), token, body)
    assert response.status_code == 201, response.content
    assert response.json() == {"event_id": body["event_id"], "result": "created"}
    saga = SagaInstance.objects.get(pk="s1")
    assert (saga.saga_type, saga.status, saga.current_step, saga.correlation_id) == (
        "order",
        "running",
        "reserve",
        "ORD-1",
    )
    assert saga.context == {"order": 1} and saga.origin == "external" and saga.event_count == 1


def test_it_ignores_a_duplicate_event_id(world):
    token = world.token(world.operator)
    body = ev("s1", "reserve", seq=1)
    assert post_events(Client(), token, body).status_code == 201
    again = post_events(Client(), token, body)
    assert again.status_code == 200 and again.json()["result"] == "duplicate"
    batch = post_events(Client(), token, [body, body]).json()
    assert [r["result"] for r in batch["results"]] == ["duplicate", "duplicate"]
    assert SagaStepEvent.objects.count() == 1
    assert SagaInstance.objects.get(pk="s1").event_count == 1


def test_it_tolerates_out_of_order_arrival(world):
    token = world.token(world.operator)
    history = [
        ev("s1", "reserve", status="succeeded", seq=1),
        ev("s1", "charge", status="failed", seq=2, error={"type": "CardDeclined", "message": "no funds"}),
        ev("s1", "reserve", direction="compensate", status="succeeded", seq=3),
    ]
    # The last event first, then the rest: the state is the same as in order, never moved backwards.
    post_events(Client(), token, history[2])
    assert SagaInstance.objects.get(pk="s1").status == "compensated"
    post_events(Client(), token, [history[1], history[0]])
    saga = SagaInstance.objects.get(pk="s1")
    assert saga.status == "compensated" and saga.current_step == "reserve" and saga.event_count == 3
    assert saga.finished_at is not None


def test_it_keeps_the_valid_items_of_a_batch_and_explains_the_rest(world):
    token = world.token(world.operator)
    good = ev("s2", "reserve", seq=1)
    bad_direction = ev("s2", "charge", direction="sideways", seq=2)
    missing = {"event_id": "x", "saga_id": "s2"}
    naive_time = ev("s2", "ship", seq=3, occurred_at="2026-01-01T10:00:00")
    response = post_events(Client(), token, [good, bad_direction, missing, naive_time, "nope"])
    assert response.status_code == 200
    body = response.json()
    assert (body["created"], body["invalid"]) == (1, 4)
    results = body["results"]
    assert results[0] == {"index": 0, "event_id": good["event_id"], "result": "created"}
    assert "direction" in results[1]["fields"]
    assert {"saga_type", "step", "direction", "status", "occurred_at"} <= set(results[2]["fields"])
    assert "occurred_at" in results[3]["fields"]
    assert "event" in results[4]["fields"]
    assert SagaStepEvent.objects.count() == 1


def test_it_answers_a_single_invalid_event_with_400_and_field_errors(world):
    token = world.token(world.operator)
    response = post_events(Client(), token, ev("s3", "reserve", status="done", attempt=0, bogus=1))
    assert response.status_code == 400
    fields = response.json()["fields"]
    assert {"status", "attempt", "event"} <= set(fields), fields
    assert "'done' is not one of" in fields["status"][0]
    assert post_events(Client(), token, []).status_code == 400
    assert SagaInstance.objects.count() == 0


def test_it_lets_any_viewer_token_post_events_but_not_a_viewer_session(world):
    assert post_events(Client(), "sy_wrong", ev("s4", "a")).status_code == 401
    assert post_events(Client(), world.token(world.outsider), ev("s4", "a")).status_code == 403
    # A browser session of a person who may only read cannot write history (CSRF aside: the role refuses it).
    session = world.client(world.viewer).post("/api/v1/saga-events", ev("s4", "a"), content_type="application/json")
    assert session.status_code == 403 and "API token" in session.json()["error"]
    assert SagaInstance.objects.count() == 0
    # A machine client's token needs only the viewer role to report events (ADR 0013)...
    assert post_events(Client(), world.token(world.viewer), ev("s4", "a", seq=1, status="failed")).status_code == 201
    assert SagaInstance.objects.get(pk="s4").status == "failed"
    # ...but not to act on the sagas it reports.
    token = world.token(world.viewer)
    response = Client().post(
        "/api/v1/sagas/s4/actions/resolve",
        {"reason": "r", "idempotency_key": "k", "note": "n"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 403 and Operation.objects.count() == 0
    operator = world.client(world.operator)
    assert (
        operator.post("/api/v1/saga-events", ev("s4", "b", seq=2), content_type="application/json").status_code == 201
    )


def test_it_lets_a_viewer_read_but_not_act(world):
    post_events(Client(), world.token(world.operator), ev("s5", "a", status="failed", seq=1))
    viewer = world.client(world.viewer)
    assert viewer.get("/api/v1/sagas/s5").json()["status"] == "failed"
    response = act(viewer, "s5", "resolve", note="fixed by hand")
    assert response.status_code == 403
    assert Operation.objects.count() == 0
    assert viewer.get("/sagas/s5/").status_code == 200
    assert viewer.post("/sagas/s5/actions/resolve", {"reason": "r", "idempotency_key": "k"}).status_code == 403
    assert b'data-testid="action-resolve"' not in viewer.get("/sagas/s5/").content


def test_it_refuses_an_action_the_saga_state_does_not_allow(world):
    post_events(
        Client(), world.token(world.operator), ev("s6", "a", status="succeeded", seq=1, saga_status="completed")
    )
    operator = world.client(world.operator)
    response = act(operator, "s6", "resolve", note="n")
    assert response.status_code == 409 and "completed" in response.json()["error"]
    response = act(operator, "s6", "resolve", key="")  # no note: the action's own fields are checked first
    assert response.status_code == 400 and "note" in response.json()["fields"]
    response = act(operator, "s6", "resolve", key="", note="n")
    assert response.status_code == 400 and "idempotency_key" in response.json()["fields"]
    assert act(operator, "s6", "explode").status_code == 404


def test_it_publishes_the_json_schema(world):
    response = world.client(world.viewer).get("/api/v1/schema/saga-event.json")
    assert response.status_code == 200 and response["Content-Type"] == "application/schema+json"
    schema = b"".join(response.streaming_content)
    assert b'"event_id"' in schema and b'"occurred_at"' in schema


def test_it_refuses_more_saga_ids_than_one_bulk_action_takes(world):
    from sagas import actions

    operator = world.client(world.operator)
    url = "/api/v1/sagas/bulk/resolve"
    ids = [f"s{i}" for i in range(actions.BULK_MAX + 1)]
    response = operator.post(url, {"preview": True, "note": "n", "saga_ids": ids}, content_type="application/json")
    assert response.status_code == 400 and str(actions.BULK_MAX) in response.json()["error"]
    assert not Operation.objects.exists()


def test_it_resolves_all_matching_a_filter_from_a_frozen_selection(world):
    token = world.token(world.operator)
    for i in range(5):
        post_events(
            Client(), token, [ev(f"b{i}", "a", seq=1), ev(f"b{i}", "a", status="failed", seq=2, saga_type="refund")]
        )
    operator = world.client(world.operator)
    url = "/api/v1/sagas/bulk/resolve"
    preview = operator.post(
        url, {"preview": True, "note": "n", "filter": {"status": "failed"}}, content_type="application/json"
    ).json()["preview"]
    assert preview["count"] == 5 and len(preview["sample"]) == 5
    # A saga that fails after the preview is not in the frozen set.
    post_events(Client(), token, [ev("late", "a", status="failed", seq=1)])
    body = {"selection": preview["selection"], "reason": "bulk fix", "idempotency_key": "bulk-1", "note": "refunded"}
    response = operator.post(url, body, content_type="application/json")
    assert response.status_code == 202, response.content
    op_id = response.json()["operation"]["id"]
    assert response.json()["operation"]["parameters"]["saga_ids"] == preview["sample"]
    assert operations.execute(op_id) == "succeeded"
    assert set(SagaInstance.objects.filter(status="resolved_manually").values_list("pk", flat=True)) == {
        f"b{i}" for i in range(5)
    }
    assert SagaInstance.objects.get(pk="late").status == "failed"
    tampered = {**body, "selection": preview["selection"][:-2] + "xx", "idempotency_key": "bulk-2"}
    assert operator.post(url, tampered, content_type="application/json").status_code == 409
    assert world.client(world.viewer).post(url, body, content_type="application/json").status_code == 403
