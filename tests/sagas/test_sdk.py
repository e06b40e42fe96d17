"""The Python SDK: steps as Celery tasks (run here one step at a time), retries, compensation, operator actions."""

import pytest
from django.core.management import call_command

from console import operations
from console.models import AuditEntry
from sagas import sdk, steps
from sagas.models import SagaInstance, SagaStepEvent
from sagas.tasks import run_step as run_step_task
from tests.sagas.helpers import act

calls: list[str] = []


class Boom(Exception):
    pass


def _ok(name):
    def step(ctx):
        calls.append(f"do {name}")
        return {name: "done"}

    return step


def _undo(name):
    def step(ctx):
        calls.append(f"undo {name}")
        assert ctx[name] == "done"  # compensation sees the context the execute left behind

    return step


def _fail(name):
    def step(ctx):
        calls.append(f"fail {name}")
        raise Boom(f"{name} is broken")

    return step


@pytest.fixture(autouse=True)
def fresh(settings):
    settings.SAGA_STEP_ATTEMPTS = 2
    settings.SAGA_RETRY_BASE_SECONDS = 0
    calls.clear()
    kept = dict(sdk.SAGAS)  # definitions other apps registered at start-up (e.g. the demo's)
    yield
    sdk.SAGAS.clear()
    sdk.SAGAS.update(kept)


def _run(saga_id):
    sdk.run_inline(saga_id, sdk.Next("execute", 0, 1))
    return SagaInstance.objects.get(pk=saga_id)


def _timeline(saga_id):
    rows = SagaStepEvent.objects.filter(saga_id=saga_id).order_by("seq")
    return [(e.step, e.direction, e.status) for e in rows]


def test_it_runs_the_happy_path(db):
    sdk.define("trip", [sdk.Step(n, _ok(n), _undo(n)) for n in ("hotel", "flight", "car")])
    saga = _run(sdk.start("trip", {"who": "ann"}, correlation_id="TRIP-1"))
    assert saga.status == "completed" and saga.origin == "sdk" and saga.finished_at is not None
    assert calls == ["do hotel", "do flight", "do car"]
    assert saga.context == {"who": "ann", "hotel": "done", "flight": "done", "car": "done"}
    assert [s for s, d, st in _timeline(saga.pk) if st == "succeeded"] == ["hotel", "flight", "car"]


def test_it_runs_each_step_as_a_celery_task(transactional_db):
    from console.celery import app

    sdk.define("trip", [sdk.Step(n, _ok(n), _undo(n)) for n in ("hotel", "flight")])
    app.conf.task_always_eager = True  # Celery runs each task (and the next one it enqueues) in this process
    try:
        saga_id = sdk.start("trip")  # no surrounding transaction: the first task is enqueued at once
    finally:
        app.conf.task_always_eager = False
    assert run_step_task.name == "sagas.run_step"
    assert SagaInstance.objects.get(pk=saga_id).status == "completed"
    assert calls == ["do hotel", "do flight"]


def test_it_retries_then_compensates_completed_steps_in_reverse(db):
    sdk.define(
        "trip",
        [
            sdk.Step("hotel", _ok("hotel"), _undo("hotel")),
            sdk.Step("flight", _ok("flight"), _undo("flight")),
            sdk.Step("car", _fail("car"), _undo("car")),
        ],
    )
    saga = _run(sdk.start("trip"))
    assert calls == ["do hotel", "do flight", "fail car", "fail car", "undo flight", "undo hotel"]
    assert saga.status == "compensated"
    failures = SagaStepEvent.objects.filter(saga=saga, status="failed").order_by("attempt")
    assert [(f.attempt, f.error_type) for f in failures] == [(1, "Boom"), (2, "Boom")]
    assert "Traceback" in failures[1].traceback and "car is broken" in failures[1].error_message


def test_it_backs_off_exponentially_with_jitter(settings):
    settings.SAGA_RETRY_BASE_SECONDS = 2
    for attempt, low, high in ((1, 1, 3), (2, 2, 6), (3, 4, 12)):
        delays = {steps.backoff(attempt) for _ in range(20)}
        assert all(low <= d < high for d in delays) and len(delays) > 1


def _compensation_failed_saga():
    sdk.define(
        "trip",
        [
            sdk.Step("hotel", _ok("hotel"), _fail("hotel-undo")),
            sdk.Step("flight", _ok("flight"), _undo("flight")),
            sdk.Step("car", _fail("car")),
        ],
    )
    return _run(sdk.start("trip"))


def test_it_leaves_a_failing_compensation_waiting_for_an_operator(db):
    saga = _compensation_failed_saga()
    assert saga.status == "compensation_failed"
    assert calls[-3:] == ["undo flight", "fail hotel-undo", "fail hotel-undo"]
    assert _timeline(saga.pk)[-1] == ("hotel", "compensate", "failed")


def test_it_lets_an_operator_resolve_and_the_timeline_shows_who_and_why(world):
    saga = _compensation_failed_saga()
    operator = world.client(world.operator)
    response = act(
        operator,
        saga.pk,
        "resolve",
        reason="hotel refunded by phone",
        note="refund #991 issued",
        evidence_url="https://tickets.example/991",
    )
    assert response.status_code == 202, response.content
    op_id = response.json()["operation"]["id"]
    assert operations.execute(op_id) == "succeeded"
    saga.refresh_from_db()
    assert saga.status == "resolved_manually" and saga.finished_at is not None
    resolved = SagaStepEvent.objects.get(saga=saga, status="resolved")
    assert resolved.actor == world.operator and resolved.note == "refund #991 issued"
    assert resolved.reason == "hotel refunded by phone"
    page = world.client(world.viewer).get(f"/sagas/{saga.pk}/").content.decode()
    assert 'data-testid="operator-action"' in page and "<strong>operator</strong>: refund #991 issued" in page
    assert "why: hotel refunded by phone" in page
    api = world.client(world.viewer).get(f"/api/v1/sagas/{saga.pk}").json()
    assert api["status"] == "resolved_manually"
    assert api["events"][-1]["actor"] == "operator" and api["events"][-1]["evidence_url"].endswith("/991")
    audit = AuditEntry.objects.get(action="saga.resolve")
    assert audit.actor == world.operator and audit.reason == "hotel refunded by phone" and audit.target_id == saga.pk
    # The same key again: the same operation, nothing recorded twice.
    again = act(operator, saga.pk, "resolve", reason="hotel refunded by phone", note="refund #991 issued")
    assert again.status_code == 200 and again.json()["operation"]["id"] == op_id
    assert SagaStepEvent.objects.filter(saga=saga, status="resolved").count() == 1


def test_it_retries_a_failed_compensation_on_request(world):
    saga = _compensation_failed_saga()
    sdk.SAGAS["trip"].steps[0].compensate = _undo("hotel")  # the participant was fixed
    response = act(world.client(world.operator), saga.pk, "retry-compensation")
    assert response.status_code == 202
    assert operations.execute(response.json()["operation"]["id"]) == "succeeded"
    started = SagaStepEvent.objects.get(saga=saga, direction="compensate", step="hotel", attempt=3, status="started")
    assert started.actor == world.operator
    sdk.run_inline(saga.pk, sdk.Next("compensate", 0, 3))  # the task the action enqueued on commit
    saga.refresh_from_db()
    assert saga.status == "compensated"


def test_it_skips_a_failed_step_with_accepted_risk_and_carries_on(world):
    sdk.define("trip", [sdk.Step("hotel", _ok("hotel")), sdk.Step("car", _fail("car")), sdk.Step("pay", _ok("pay"))])
    sdk.SAGAS["trip"].steps[0].compensate = _fail("hotel-undo")
    saga = _run(sdk.start("trip"))
    assert saga.status == "compensation_failed"
    call_command(
        "saga", "skip", saga.pk, "--user", "operator", "--reason", "hotel keeps it", "--note", "€40 lost", "--wait"
    )
    saga.refresh_from_db()
    assert saga.status == "compensated"
    skipped = SagaStepEvent.objects.get(saga=saga, status="skipped")
    assert (skipped.step, skipped.direction, skipped.actor) == ("hotel", "compensate", world.operator)
    assert AuditEntry.objects.get(action="saga.skip").via == "operation"


def test_it_retries_a_failed_step_on_request(world):
    sdk.define("trip", [sdk.Step("hotel", _fail("hotel")), sdk.Step("car", _ok("car"))])
    saga = _run(sdk.start("trip"))
    assert saga.status == "failed"  # nothing completed, so nothing to compensate: it waits for an operator
    sdk.SAGAS["trip"].steps[0].execute = _ok("hotel")
    response = act(world.client(world.operator), saga.pk, "retry-step", reason="hotel API is back")
    assert response.status_code == 202, response.content
    assert operations.execute(response.json()["operation"]["id"]) == "succeeded"
    saga.refresh_from_db()
    assert saga.status == "running"
    sdk.run_inline(saga.pk, sdk.Next("execute", 0, 3))  # the task the action enqueued on commit
    saga.refresh_from_db()
    assert saga.status == "completed" and calls[-2:] == ["do hotel", "do car"]
