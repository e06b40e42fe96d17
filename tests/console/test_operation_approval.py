"""Four eyes: a kind listed in OPERATION_APPROVAL_KINDS waits until an operator other than its requester approves it."""

import re

import pytest

from console import operations
from console.actions import do_approve_operation
from console.dashboard import tile
from console.models import AuditEntry, Operation
from tests.conftest import make_user


@pytest.fixture
def approval(settings):
    settings.OPERATION_APPROVAL_KINDS = ["noop", "dlq.replay"]


@pytest.fixture
def second(world):
    return make_user("second", "operator")


def _start(client, key="start-1"):
    body = {"kind": "noop", "reason": "prove it", "idempotency_key": key, "parameters": {"items": 3, "delay_ms": 0}}
    return client.post("/api/v1/operations", data=body, content_type="application/json")


def _decide(client, op_id, decision, key, reason="looked at it"):
    return client.post(
        f"/api/v1/operations/{op_id}/{decision}",
        {"reason": reason, "idempotency_key": key},
        content_type="application/json",
    )


def test_it_waits_for_approval_and_runs_only_after_another_operator_approves(
    world, second, approval, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = _start(world.client(world.operator))
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "awaiting_approval" and body["approved_by"] is None
    assert len(callbacks) == 2  # live broadcasts only: nothing was enqueued
    assert AuditEntry.objects.get(action="operation.start").reason == "prove it"
    assert operations.execute(body["id"]) is None  # a stray task does not run it
    assert Operation.objects.get(pk=body["id"]).progress_done == 0

    response = _decide(world.client(second), body["id"], "approve", "a1")
    assert response.status_code == 200, response.content
    approved = response.json()
    assert approved["status"] == "queued" and approved["approved_by"] == "second" and approved["approved_at"]
    assert operations.execute(body["id"]) == "succeeded"
    entry = AuditEntry.objects.get(action="operation.approve")
    assert entry.actor == second and entry.reason == "looked at it" and entry.target_id == body["id"]


def test_it_enqueues_an_approved_operation_on_commit(world, second, approval, django_capture_on_commit_callbacks):
    op_id = _start(world.client(world.operator)).json()["id"]
    with django_capture_on_commit_callbacks() as callbacks:
        do_approve_operation(second, op_id, "fine", "a1")
    names = {getattr(c, "__name__", "") for c in callbacks}
    assert len(callbacks) == 3 and "_broadcast_awaiting" in names  # enqueue + operation + dashboard tile


def test_it_refuses_self_approval(world, approval):
    client = world.client(world.operator)
    op_id = _start(client).json()["id"]
    for decision in ("approve", "reject"):
        response = _decide(client, op_id, decision, f"self-{decision}")
        assert response.status_code == 409
        assert "other than the one who requested it" in response.json()["error"]
    assert Operation.objects.get(pk=op_id).status == "awaiting_approval"
    assert not AuditEntry.objects.filter(action__in=["operation.approve", "operation.reject"]).exists()


def test_it_refuses_a_viewer(world, approval):
    op_id = _start(world.client(world.operator)).json()["id"]
    response = _decide(world.client(world.viewer), op_id, "approve", "v1")
    assert response.status_code == 403
    assert Operation.objects.get(pk=op_id).status == "awaiting_approval"


def test_it_requires_a_reason_and_a_key(world, second, approval):
    op_id = _start(world.client(world.operator)).json()["id"]
    response = world.client(second).post(f"/api/v1/operations/{op_id}/approve", {}, content_type="application/json")
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"reason", "idempotency_key"}
    assert Operation.objects.get(pk=op_id).status == "awaiting_approval"


def test_it_cancels_a_rejected_operation(world, second, approval):
    op_id = _start(world.client(world.operator)).json()["id"]
    response = _decide(world.client(second), op_id, "reject", "r1", reason="not during the freeze")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "cancelled" and body["approved_by"] is None
    assert body["message"] == "rejected by second: not during the freeze"
    assert operations.execute(op_id) is None
    entry = AuditEntry.objects.get(action="operation.reject")
    assert entry.actor == second and entry.reason == "not during the freeze"
    # Decided once: neither decision applies any more.
    assert _decide(world.client(world.admin), op_id, "approve", "a2").status_code == 409


def test_it_repeats_the_answer_for_the_same_key(world, second, approval):
    op_id = _start(world.client(world.operator)).json()["id"]
    client = world.client(second)
    first = _decide(client, op_id, "approve", "a1")
    operations.execute(op_id)
    again = _decide(client, op_id, "approve", "a1")
    assert again.status_code == 200 and again.json()["id"] == op_id
    assert AuditEntry.objects.filter(action="operation.approve").count() == 1
    assert first.json()["approved_at"] == again.json()["approved_at"]
    # The same key for the other decision is a mistake the client must hear about.
    assert _decide(client, op_id, "reject", "a1").status_code == 409


def test_it_refuses_to_approve_what_is_not_awaiting(world, second):
    op_id = _start(world.client(world.operator)).json()["id"]
    response = _decide(world.client(second), op_id, "approve", "a1")
    assert response.status_code == 409 and "queued" in response.json()["error"]


def test_it_runs_an_unlisted_kind_at_once(world, settings, django_capture_on_commit_callbacks):
    settings.OPERATION_APPROVAL_KINDS = ["dlq.replay"]
    with django_capture_on_commit_callbacks() as callbacks:
        body = _start(world.client(world.operator)).json()
    assert body["status"] == "queued"
    assert len(callbacks) == 2
    assert operations.execute(body["id"]) == "succeeded"


def test_it_lets_the_requester_cancel_while_awaiting(world, approval):
    client = world.client(world.operator)
    op_id = _start(client).json()["id"]
    response = client.post(
        f"/api/v1/operations/{op_id}/cancel", {"reason": "changed my mind", "idempotency_key": "c1"}, "application/json"
    )
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert response.json()["message"] == "withdrawn before approval by operator: changed my mind"
    assert operations.execute(op_id) is None


def test_it_says_who_cancelled_a_waiting_operation_someone_else_asked_for(world, second, approval):
    op_id = _start(world.client(world.operator)).json()["id"]
    cancel = {"reason": "duplicate of #12", "idempotency_key": "c1"}
    response = world.client(second).post(f"/api/v1/operations/{op_id}/cancel", cancel, "application/json")
    assert response.status_code == 200
    assert response.json()["message"] == "cancelled while awaiting approval by second: duplicate of #12"
    entry = AuditEntry.objects.get(action="operation.cancel")
    assert entry.actor == second and entry.parameters["status_before"] == "awaiting_approval"
    assert operations.execute(op_id) is None


def test_it_shows_the_waiting_count_on_the_dashboard(world, approval):
    assert tile("operations-awaiting-approval").value == "0" and not tile("operations-awaiting-approval").bad
    _start(world.client(world.operator))
    awaiting = tile("operations-awaiting-approval")
    assert awaiting.value == "1" and awaiting.bad
    assert awaiting.href == "/operations/?status=awaiting_approval"
    page = world.client(world.viewer).get("/")
    assert b'data-testid="tile-operations-awaiting-approval"' in page.content
    listing = world.client(world.viewer).get("/operations/?status=awaiting_approval")
    assert b'<option value="awaiting_approval" selected>' in listing.content
    assert b"prove it" in listing.content


def _field(html: str, form: str, name: str) -> str:
    section = html.split(f'data-testid="{form}"', 1)[1].split("</form>", 1)[0]
    return re.search(rf'name="{name}" value="([^"]+)"', section).group(1)


def test_it_approves_from_the_operation_page(world, second, approval):
    op_id = _start(world.client(world.operator)).json()["id"]
    # The requester sees a note, not the decision forms.
    own = world.client(world.operator).get(f"/operations/{op_id}/").content.decode()
    assert 'data-testid="approval-note"' in own and 'data-testid="approve-form"' not in own
    assert 'data-testid="reject-form"' not in own and 'data-testid="control-form"' in own  # cancel stays
    viewer = world.client(world.viewer).get(f"/operations/{op_id}/").content.decode()
    assert 'data-testid="approve-form"' not in viewer and "awaiting approval by another operator" in viewer

    client = world.client(second, enforce_csrf=True)
    html = client.get(f"/operations/{op_id}/").content.decode()
    assert "awaiting approval by another operator" in html
    key = _field(html, "approve-form", "idempotency_key")
    assert key != _field(html, "reject-form", "idempotency_key")
    # Without the CSRF token the post is refused and nothing changes.
    assert client.post(f"/operations/{op_id}/approve", {"reason": "ok", "idempotency_key": key}).status_code == 403
    assert Operation.objects.get(pk=op_id).status == "awaiting_approval"
    token = _field(html, "approve-form", "csrfmiddlewaretoken")
    data = {"reason": "ok", "idempotency_key": key, "csrfmiddlewaretoken": token}
    response = client.post(f"/operations/{op_id}/approve", data)
    assert response.status_code == 302 and response["Location"] == f"/operations/{op_id}/"
    op = Operation.objects.get(pk=op_id)
    assert op.status == "queued" and op.approved_by == second
    assert client.post(f"/operations/{op_id}/approve", data).status_code == 302  # the same key: no second effect
    assert AuditEntry.objects.filter(action="operation.approve").count() == 1
    shown = client.get(f"/operations/{op_id}/").content.decode()
    assert 'data-testid="approved-by"' in shown and "Approved by second" in shown
    assert 'data-testid="approve-form"' not in shown


def test_it_shows_page_errors_for_a_missing_reason_and_self_approval(world, second, approval):
    op_id = _start(world.client(world.operator)).json()["id"]
    client = world.client(second)
    response = client.post(f"/operations/{op_id}/reject", {"reason": "", "idempotency_key": "r1"}, follow=True)
    assert "reason" in response.content.decode() and Operation.objects.get(pk=op_id).status == "awaiting_approval"
    own = world.client(world.operator)
    response = own.post(f"/operations/{op_id}/approve", {"reason": "me", "idempotency_key": "s1"}, follow=True)
    assert "other than the one who requested it" in response.content.decode()
    assert Operation.objects.get(pk=op_id).status == "awaiting_approval"
    assert world.client(world.viewer).post(f"/operations/{op_id}/reject", {"reason": "x"}).status_code == 403


def test_it_rejects_from_the_operation_page(world, second, approval):
    op_id = _start(world.client(world.operator)).json()["id"]
    client = world.client(second)
    response = client.post(f"/operations/{op_id}/reject", {"reason": "<b>no</b>", "idempotency_key": "r1"})
    assert response.status_code == 302
    assert Operation.objects.get(pk=op_id).status == "cancelled"
    html = client.get(f"/operations/{op_id}/").content.decode()
    assert "rejected by second: &lt;b&gt;no&lt;/b&gt;" in html and "<b>no</b>" not in html


def test_it_refuses_an_approval_kind_no_app_registers(settings):
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    from console.checks import approval_kinds

    settings.OPERATION_APPROVAL_KINDS = ["dlq.replay", "kafka_offset_reset"]
    assert approval_kinds(None) == []
    settings.OPERATION_APPROVAL_KINDS = ["dlq.replay", "dlq.replya"]
    (error,) = approval_kinds(None)
    assert error.id == "switchyard.E001" and "dlq.replya" in error.msg and "dlq.replay" in error.hint
    with pytest.raises(SystemCheckError):
        call_command("check")


def test_it_refuses_to_cancel_a_waiting_request_without_the_role_to_refuse_it(world, second, approval, monkeypatch):
    monkeypatch.setattr(operations.get_kind("noop"), "role", "admin")
    op_id = _start(world.client(world.admin)).json()["id"]
    cancel = {"reason": "not mine to stop", "idempotency_key": "c1"}
    response = world.client(second).post(f"/api/v1/operations/{op_id}/cancel", cancel, "application/json")
    assert response.status_code == 403 and "admin role" in response.json()["error"]
    assert Operation.objects.get(pk=op_id).status == "awaiting_approval"
    assert not AuditEntry.objects.filter(action="operation.cancel").exists()


def test_it_says_on_the_page_which_role_a_waiting_operation_needs(world, second, approval, monkeypatch):
    monkeypatch.setattr(operations.get_kind("noop"), "role", "admin")
    op_id = _start(world.client(world.admin)).json()["id"]
    client = world.client(second)
    for url, body in (
        (f"/operations/{op_id}/control", {"action": "cancel", "reason": "not mine", "idempotency_key": "c1"}),
        (f"/operations/{op_id}/approve", {"reason": "looks fine", "idempotency_key": "a1"}),
    ):
        response = client.post(url, body)
        assert response.status_code == 302 and response["Location"] == f"/operations/{op_id}/"
        html = client.get(response["Location"]).content.decode()
        assert "the admin role is required to" in html
    assert Operation.objects.get(pk=op_id).status == "awaiting_approval"
