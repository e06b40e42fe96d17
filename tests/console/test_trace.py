"""One correlation id across the console: the saga, the outbox events it wrote and the dead letters they became,
on a page (linked from the saga and the dead letter) and in GET /api/v1/trace."""

from datetime import UTC, datetime

from django.db import transaction
from django.utils import timezone

from brokers.base import Message
from dlq import ingest
from dlq.models import DeadLetter, DeadLetterSource
from outbox import publish
from sagas.models import SagaInstance

HOSTILE = "ORD-<script>alert(1)</script>"


def _world_of(correlation: str) -> tuple[SagaInstance, DeadLetter]:
    now = timezone.now()
    saga = SagaInstance.objects.create(
        id=f"saga-{len(correlation)}", saga_type="checkout", correlation_id=correlation, status="compensated",
        started_at=now, updated_at=now, state_since=now,
    )  # fmt: skip
    with transaction.atomic():
        publish("kafka://orders", "order-42", "OrderPlaced", {"n": 1}, correlation_id=correlation)
        publish("kafka://orders", "order-42", "OrderCancelled", {"n": 2}, correlation_id=correlation)
        publish("kafka://orders", "order-43", "OrderPlaced", {"n": 3}, correlation_id="someone-else")
    source = DeadLetterSource.objects.create(broker="kafka", destination="orders.DLQ")
    message = Message(
        "orders.DLQ",
        b"{}",
        None,
        {"x-exception-type": b"app.Boom", "x-correlation-id": correlation.encode()},
        0,
        7,
        None,
        datetime.now(UTC),
    )  # noqa: E501
    [dl] = ingest.store(source, [message])
    return saga, dl


def test_it_shows_a_saga_its_outbox_events_and_dead_letters_under_one_correlation_id(world):
    saga, dl = _world_of("ORD-000042")
    client = world.client(world.viewer)

    html = client.get("/trace/", {"correlation": "ORD-000042"}).content.decode()

    assert 'data-testid="trace-sagas"' in html and f'href="{saga.get_absolute_url()}"' in html
    assert html.count("OrderPlaced") == 1 and "OrderCancelled" in html  # not the other correlation's event
    assert 'data-testid="trace-dead-letters"' in html and f'href="/dead-letters/{dl.pk}/"' in html
    # The sections come in the order things happen: saga, outbox, dead letters.
    assert html.index("trace-sagas") < html.index("trace-outbox") < html.index("trace-dead-letters")
    # The saga list and both detail pages link here.
    for page in ("/sagas/", saga.get_absolute_url(), f"/dead-letters/{dl.pk}/"):
        assert "/trace/?correlation=ORD-000042" in client.get(page).content.decode(), page


def test_it_answers_the_api_and_escapes_a_hostile_correlation_id(world):
    _world_of(HOSTILE)
    client = world.client(world.viewer)

    data = client.get("/api/v1/trace", {"correlation": HOSTILE}).json()
    assert [(s["name"], len(s["rows"])) for s in data["sections"]] == [("sagas", 1), ("outbox", 2), ("dead-letters", 1)]

    html = client.get("/trace/", {"correlation": HOSTILE}).content.decode()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert client.get("/api/v1/trace").status_code == 400
    nothing = client.get("/trace/", {"correlation": "nobody"}).content.decode()
    assert 'data-testid="trace-empty"' in nothing


def test_it_lists_every_api_endpoint_with_its_methods_role_and_summary(world):
    from django.urls import get_resolver

    body = world.client(world.viewer).get("/api/v1/").json()
    listed = {e["path"]: e for e in body["endpoints"]}
    # Every /api/v1/ route the URL configuration has, found independently of the index's own walk.
    routes = set()

    def walk(patterns, prefix=""):
        for p in patterns:
            route = prefix + str(p.pattern)
            if hasattr(p, "url_patterns"):
                walk(p.url_patterns, route)
            elif route.startswith("api/v1/"):
                routes.add("/" + route)

    walk(get_resolver().url_patterns)
    assert routes == set(listed)
    assert all(e["summary"] for e in listed.values()), [p for p, e in listed.items() if not e["summary"]]
    assert listed["/api/v1/dead-letters/replay"]["methods"] == ["POST"]
    assert listed["/api/v1/dead-letters/replay"]["role"] == "operator"
    assert listed["/api/v1/alert-rules/<int:rule_id>"]["role"] == "admin"
    assert world.client(None).get("/api/v1/").status_code == 401
