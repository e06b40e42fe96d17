import threading
import time

from django.core.management import call_command
from django.db import connection

from console import operations
from console.models import AuditEntry, Operation


def _start(client, key="key-1", **extra):
    body = {"kind": "noop", "reason": "prove it", "idempotency_key": key, "parameters": {"items": 5, "delay_ms": 0}}
    body.update(extra)
    return client.post("/api/v1/operations", data=body, content_type="application/json")


def test_it_starts_a_noop_and_audits_it(world, django_capture_on_commit_callbacks):
    client = world.client(world.operator)
    with django_capture_on_commit_callbacks() as callbacks:
        response = _start(client)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "queued" and body["kind"] == "noop" and body["requested_by"] == "operator"
    assert len(callbacks) == 2  # enqueue + live broadcast, only after commit
    entry = AuditEntry.objects.get(action="operation.start")
    assert entry.actor == world.operator and entry.reason == "prove it" and entry.target_id == body["id"]


def test_it_returns_the_same_operation_for_the_same_key(world):
    client = world.client(world.operator)
    first = _start(client).json()
    again = _start(client)
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    assert Operation.objects.count() == 1
    assert AuditEntry.objects.filter(action="operation.start").count() == 1


def test_it_refuses_a_key_reused_by_someone_else(world):
    _start(world.client(world.operator))
    response = _start(world.client(world.admin))
    assert response.status_code == 409


def test_it_takes_identity_from_the_session_not_the_body(world):
    body = _start(world.client(world.operator), requested_by="admin", actor="admin").json()
    assert body["requested_by"] == "operator"
    assert AuditEntry.objects.get().actor == world.operator


def test_it_explains_invalid_requests(world):
    client = world.client(world.operator)
    response = client.post("/api/v1/operations", data={"kind": "noop"}, content_type="application/json")
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"reason", "idempotency_key"}
    response = _start(client, parameters={"items": 0, "delay_ms": "x", "bogus": 1})
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"items", "delay_ms", "parameters"}
    response = _start(client, kind="drop-tables")
    assert response.status_code == 400 and "kind" in response.json()["fields"]
    response = client.post("/api/v1/operations", data="{not json", content_type="application/json")
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]
    assert Operation.objects.count() == 0


def test_it_refuses_a_viewer(world):
    response = _start(world.client(world.viewer))
    assert response.status_code == 403
    assert Operation.objects.count() == 0


def test_it_runs_a_noop_to_completion(world):
    op_id = _start(world.client(world.operator)).json()["id"]
    assert operations.execute(op_id) == "succeeded"
    body = world.client(world.viewer).get(f"/api/v1/operations/{op_id}").json()
    assert body["status"] == "succeeded"
    assert body["progress"] == {"done": 5, "total": 5, "percent": 100}
    assert operations.execute(op_id) is None  # a finished operation is never run twice


def test_it_cancels_a_queued_operation_at_once(world):
    client = world.client(world.operator)
    op_id = _start(client).json()["id"]
    response = client.post(
        f"/api/v1/operations/{op_id}/cancel",
        {"reason": "wrong one", "idempotency_key": "c1"},
        content_type="application/json",
    )
    assert response.json()["status"] == "cancelled"
    assert operations.execute(op_id) is None
    assert AuditEntry.objects.filter(action="operation.cancel", reason="wrong one").exists()


def test_it_pauses_resumes_and_cancels_a_running_operation(transactional_db, world):
    client = world.client(world.operator)
    body = {"kind": "noop", "reason": "r", "idempotency_key": "run-1", "parameters": {"items": 400, "delay_ms": 10}}
    op_id = client.post("/api/v1/operations", data=body, content_type="application/json").json()["id"]
    result = {}
    worker = threading.Thread(target=_run_in_thread, args=(op_id, result))
    worker.start()
    _wait_for(lambda: Operation.objects.get(pk=op_id).progress_done >= 5)
    control = lambda action, key: client.post(  # noqa: E731
        f"/api/v1/operations/{op_id}/{action}",
        {"reason": action, "idempotency_key": key},
        content_type="application/json",
    )
    assert control("pause", "p1").status_code == 200
    worker.join(5)
    assert result["state"] == "paused"
    paused = Operation.objects.get(pk=op_id)
    assert paused.status == "paused" and 5 <= paused.progress_done < 400

    assert control("resume", "r1").json()["status"] == "queued"
    worker = threading.Thread(target=_run_in_thread, args=(op_id, result))
    worker.start()
    _wait_for(lambda: Operation.objects.get(pk=op_id).progress_done > paused.progress_done)
    assert control("cancel", "x1").status_code == 200
    worker.join(30)
    assert (
        result["state"] == "cancelled"
    )  # stopped at a checkpoint, before the end (below), whatever the machine's load
    assert Operation.objects.get(pk=op_id).progress_done < 400
    # The same idempotency key repeats the answer without acting again.
    assert control("cancel", "x1").status_code == 200
    assert AuditEntry.objects.filter(action="operation.cancel").count() == 1


def test_it_refuses_an_impossible_transition(world):
    client = world.client(world.operator)
    op_id = _start(client).json()["id"]
    operations.execute(op_id)
    response = client.post(
        f"/api/v1/operations/{op_id}/pause", {"reason": "r", "idempotency_key": "p"}, content_type="application/json"
    )
    assert response.status_code == 409
    assert "succeeded" in response.json()["error"]


def test_it_starts_from_the_operations_page(world):
    client = world.client(world.operator)
    page = client.get("/operations/")
    assert b'data-testid="start-form"' in page.content
    response = client.post(
        "/operations/start", {"kind": "noop", "items": 3, "delay_ms": 0, "reason": "page", "idempotency_key": "pk1"}
    )
    op = Operation.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/operations/{op.pk}/"
    assert op.parameters == {"items": 3, "delay_ms": 0}
    assert b'data-testid="start-form"' not in world.client(world.viewer).get("/operations/").content


def test_it_lists_operations_through_the_api_and_the_page(world):
    client = world.client(world.operator)
    op_id = _start(client).json()["id"]
    listed = world.client(world.viewer).get("/api/v1/operations").json()["operations"]
    assert [o["id"] for o in listed] == [op_id]
    assert op_id[:8] in world.client(world.viewer).get("/operations/").content.decode()
    assert world.client(world.viewer).get(f"/operations/{op_id}/").status_code == 200


def test_it_prints_a_token_from_the_command(world, capsys):
    call_command("create_api_token", "viewer")
    token = capsys.readouterr().out.strip()
    response = world.client(None).get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.json() == {"username": "viewer", "role": "viewer", "via": "token"}
    from console.models import ApiToken

    assert not ApiToken.objects.filter(token_hash=token).exists()  # stored hashed


def _run_in_thread(op_id, result):
    try:
        result["state"] = operations.execute(op_id)
    finally:
        connection.close()  # the thread's own connection, or the test database cannot be dropped


def _wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_it_hands_an_abandoned_operation_to_a_live_worker(world):
    """A worker SIGKILLed mid-run leaves `running` with a stale heartbeat; it is claimed again and finishes."""
    from django.utils import timezone

    op_id = _start(world.client(world.operator)).json()["id"]
    stale = timezone.now() - timezone.timedelta(seconds=operations.STALE_AFTER_SECONDS + 5)
    Operation.objects.filter(pk=op_id).update(status="running", progress_done=2, progress_total=5, updated_at=stale)
    assert [str(i) for i in operations.stale()] == [op_id]
    assert operations.execute(op_id) == "succeeded"
    assert Operation.objects.get(pk=op_id).progress_done == 5
    # A fresh heartbeat means a live worker has it: nobody else may claim it.
    Operation.objects.filter(pk=op_id).update(status="running", updated_at=timezone.now())
    assert operations.stale() == [] and operations.execute(op_id) is None


def test_it_supports_createsuperuser(db, monkeypatch):
    from django.contrib.auth.models import User

    from console.access import role_of

    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "s3cret-enough")
    call_command("createsuperuser", "--noinput", "--username", "root", "--email", "root@example.com")
    assert role_of(User.objects.get(username="root")) == "admin"


def test_it_refuses_a_kind_that_is_not_a_name_with_a_400(world):
    # A JSON list or object as the kind cannot be looked up (unhashable): a field error, not a 500.
    for kind in (["noop"], {"name": "noop"}, 7, None):
        response = world.client(world.operator).post(
            "/api/v1/operations",
            data={"kind": kind, "reason": "r", "idempotency_key": f"k-{kind!r}"},
            content_type="application/json",
        )
        assert response.status_code == 400, (kind, response.content)
        assert "kind" in response.json()["fields"]
