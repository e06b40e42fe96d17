"""Retry every failed row of one destination: the button on the Outbox page and the API's `destination` variant."""

import json

from django.db import transaction

from console.access import OPERATOR
from console.models import AuditEntry
from outbox import publish
from outbox.consumers import OutboxConsumer
from outbox.models import OutboxEvent

Status = OutboxEvent.Status


def _seed():
    """Two failed rows in kafka://orders (two keys), one failed in sqs://billing, one pending in kafka://orders."""
    with transaction.atomic():
        a = publish("kafka://orders", "o-1", "order.created", {"n": 1})
        b = publish("kafka://orders", "o-2", "order.created", {"n": 2})
        other = publish("sqs://billing", "b-1", "invoice.created", {"n": 3})
        pending = publish("kafka://orders", "o-3", "order.created", {"n": 4})
    OutboxEvent.objects.filter(pk__in=[a.pk, b.pk, other.pk]).update(status=Status.FAILED, attempts=8, last_error="x")
    return a, b, other, pending


def _statuses(*events) -> list[tuple[str, int]]:
    rows = {e.pk: (e.status, e.attempts) for e in OutboxEvent.objects.filter(pk__in=[e.pk for e in events])}
    return [rows[e.pk] for e in events]


def _form(destination: str, reason: str, key: str) -> dict:
    return {"destination": destination, "reason": reason, "idempotency_key": key}


def test_it_shows_a_retry_button_only_for_destinations_with_failed_rows(db, world):
    _seed()
    with transaction.atomic():
        publish("nats://quiet.events", "q-1", "quiet", {})
    html = world.client(world.operator).get("/outbox/").content.decode()
    orders = html[html.index('data-destination="kafka://orders"') :]
    orders = orders[: orders.index("</tr>")]
    assert 'data-testid="retry-destination"' in orders and "Retry 2 failed" in orders
    quiet = html[html.index('data-destination="nats://quiet.events"') :]
    assert 'data-testid="retry-destination"' not in quiet[: quiet.index("</tr>")]
    viewer = world.client(world.viewer).get("/outbox/").content.decode()
    assert 'data-testid="retry-destination"' not in viewer


def test_it_refuses_a_viewer(db, world):
    a, b, other, _ = _seed()
    response = world.client(world.viewer).post("/outbox/retry-destination", _form("kafka://orders", "fixed", "v-1"))
    assert response.status_code == 403
    assert _statuses(a, b) == [(Status.FAILED, 8)] * 2
    assert not AuditEntry.objects.filter(action="outbox.retry").exists()


def test_it_shows_an_error_and_changes_nothing_without_a_reason(db, world):
    a, b, *_ = _seed()
    response = world.client(world.operator).post(
        "/outbox/retry-destination", _form("kafka://orders", "", "k-1"), follow=True
    )
    html = response.content.decode()
    assert response.status_code == 200 and "flash-error" in html and "reason: This field is required." in html
    assert _statuses(a, b) == [(Status.FAILED, 8)] * 2


def test_it_requeues_every_failed_row_of_one_destination_once_per_key(db, world):
    a, b, other, pending = _seed()
    client = world.client(world.operator)
    response = client.post("/outbox/retry-destination", _form("kafka://orders", "broker fixed", "k-1"), follow=True)
    assert "kafka://orders: 2 failed row(s) will be relayed again." in response.content.decode()
    assert _statuses(a, b) == [(Status.PENDING, 0)] * 2
    assert _statuses(other) == [(Status.FAILED, 8)]  # another destination's failed row is left alone
    assert _statuses(pending) == [(Status.PENDING, 0)]
    entry = AuditEntry.objects.get(action="outbox.retry")
    assert (entry.actor, entry.reason, entry.target_type, entry.target_id) == (
        world.operator,
        "broker fixed",
        "outbox_destination",
        "kafka://orders",
    )
    assert entry.result == {"retried": [a.pk, b.pk]} and entry.parameters == {"destination": "kafka://orders"}
    # The relay fails them again; a repeat of the same submission must not re-queue them a second time.
    OutboxEvent.objects.filter(pk__in=[a.pk, b.pk]).update(status=Status.FAILED, attempts=8)
    client.post("/outbox/retry-destination", _form("kafka://orders", "broker fixed", "k-1"))
    assert _statuses(a, b) == [(Status.FAILED, 8)] * 2
    assert AuditEntry.objects.filter(action="outbox.retry").count() == 1


def test_it_says_so_when_the_destination_has_no_failed_rows(db, world):
    _seed()
    response = world.client(world.operator).post(
        "/outbox/retry-destination", _form("nats://nothing.here", "r", "k-1"), follow=True
    )
    assert "nats://nothing.here has no failed rows" in response.content.decode()
    bad = world.client(world.operator).post("/outbox/retry-destination", _form("nowhere", "r", "k-2"), follow=True)
    assert "must start with one of" in bad.content.decode()
    assert not AuditEntry.objects.filter(action="outbox.retry").exists()


def test_it_answers_an_htmx_post_with_a_refresh(db, world):
    a, *_ = _seed()
    response = world.client(world.operator).post(
        "/outbox/retry-destination", _form("kafka://orders", "fixed", "k-1"), headers={"HX-Request": "true"}
    )
    assert response.status_code == 200 and response.headers["HX-Refresh"] == "true"
    assert _statuses(a) == [(Status.PENDING, 0)]


def test_it_keeps_the_buttons_usable_in_the_live_re_render(db, world):
    """The socket's re-render has no request: the forms post through htmx (which sends the page's CSRF token) and
    carry an idempotency key of their own, not an empty one that every later click would repeat."""
    _seed()
    consumer = OutboxConsumer()
    consumer._roles = {"role": OPERATOR, "can_act": True, "can_admin": False}
    first, second = consumer.render({"type": "outbox.backlog"}), consumer.render({"type": "outbox.backlog"})
    assert 'data-testid="retry-destination"' in first
    assert 'hx-post="/outbox/retry-destination"' in first
    assert 'name="idempotency_key" value="-' not in first
    key = 'name="idempotency_key" value="'
    assert first.split(key)[1].split('"')[0] != second.split(key)[1].split('"')[0]


def _post(client, body, token: str = ""):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post(
        "/api/v1/outbox/events/retry", json.dumps(body), content_type="application/json", headers=headers
    )


def test_it_retries_a_destination_through_the_api(db, world):
    a, b, other, _ = _seed()
    client, token = world.client(None), world.token(world.operator)
    body = {"destination": "kafka://orders", "reason": "broker fixed", "idempotency_key": "api-1"}
    response = _post(client, body, token)
    assert response.status_code == 200 and response.json() == {"retried": [a.pk, b.pk]}
    assert _statuses(a, b, other) == [(Status.PENDING, 0), (Status.PENDING, 0), (Status.FAILED, 8)]
    OutboxEvent.objects.filter(pk=a.pk).update(status=Status.FAILED, attempts=8)
    assert _post(client, body, token).json() == {
        "retried": [a.pk, b.pk]
    }  # same key: the first answer, no second effect
    assert _statuses(a) == [(Status.FAILED, 8)]
    entry = AuditEntry.objects.get(action="outbox.retry")
    assert (entry.actor, entry.via, entry.target_id) == (world.operator, "token", "kafka://orders")
    assert _post(client, {**body, "destination": "sqs://nothing", "idempotency_key": "api-2"}, token).status_code == 409


def test_it_wants_exactly_one_of_ids_or_destination(db, world):
    a, *_ = _seed()
    client = world.client(world.operator)
    base = {"reason": "r", "idempotency_key": "x-1"}
    both = _post(client, {**base, "ids": [a.pk], "destination": "kafka://orders"})
    assert both.status_code == 400 and "exactly one of ids" in both.json()["error"]
    neither = _post(client, base)
    assert neither.status_code == 400 and "exactly one of ids" in neither.json()["error"]
    bad = _post(client, {**base, "destination": "orders"})
    assert bad.status_code == 400 and "destination" in bad.json()["fields"]
    viewer = _post(world.client(world.viewer), {**base, "destination": "kafka://orders"})
    assert viewer.status_code == 403
    assert _statuses(a) == [(Status.FAILED, 8)]
    assert not AuditEntry.objects.filter(action="outbox.retry").exists()
