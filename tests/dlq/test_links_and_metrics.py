"""A dead letter's links to the saga and the outbox event behind it, and the switchyard_dead_letters gauge."""

import uuid
from datetime import UTC, datetime

import pytest
from django.utils import timezone

from brokers.base import Message
from dlq import ingest
from dlq.models import DeadLetter, DeadLetterSource
from outbox.models import OutboxEvent
from sagas.models import SagaInstance


@pytest.fixture
def source(db):
    return DeadLetterSource.objects.create(broker="kafka", destination="payments.DLQ")


def _store(source, headers: dict[str, bytes], offset: int = 0) -> DeadLetter:
    message = Message(
        destination=source.destination,
        body=b'{"payment": 1}',
        key=None,
        headers={"x-exception-type": b"app.Declined", **headers},
        partition=0,
        offset=offset,
        timestamp=datetime.now(UTC),
    )
    return ingest.store(source, [message])[0]


def test_it_links_a_dead_letter_to_its_saga_and_outbox_event(source, world):
    now = timezone.now()
    saga = SagaInstance.objects.create(
        id="saga-42", saga_type="checkout", correlation_id="corr-42", started_at=now, updated_at=now, state_since=now
    )
    event = OutboxEvent.objects.create(
        destination="kafka://payments", key="order-42", order_key="order-42", event_type="PaymentRequested"
    )
    dl = _store(source, {"X-Event-Id": str(event.event_id).encode()})
    DeadLetter.objects.filter(pk=dl.pk).update(correlation_id="corr-42")

    page = world.client(world.viewer).get(f"/dead-letters/{dl.pk}/").content.decode()

    assert f'href="{saga.get_absolute_url()}"' in page and 'data-testid="saga-link"' in page
    assert str(event.event_id) in page and 'data-testid="outbox-link"' in page
    assert f'href="/outbox/events/{event.pk}/"' in page  # straight to the event, payload and all


def test_it_shows_an_unknown_event_id_without_a_link(source, world):
    unknown = uuid.uuid4()
    dl = _store(source, {"x-event-id": str(unknown).encode()}, offset=1)
    broken = _store(source, {"x-event-id": b"not-a-uuid <script>"}, offset=2)
    client = world.client(world.viewer)

    page = client.get(f"/dead-letters/{dl.pk}/").content.decode()
    assert str(unknown) in page and "not in this console" in page and "outbox-link" not in page
    response = client.get(f"/dead-letters/{broken.pk}/")
    assert response.status_code == 200 and b"<script>" not in response.content


def test_it_exports_dead_letters_by_broker_and_status(source, world):
    for offset in range(3):
        _store(source, {}, offset=10 + offset)
    first = DeadLetter.objects.filter(source=source).order_by("id").first()
    DeadLetter.objects.filter(pk=first.pk).update(status=DeadLetter.Status.ARCHIVED)
    token = world.token(world.viewer)

    text = world.client(None).get("/metrics", headers={"Authorization": f"Bearer {token}"}).content.decode()

    assert 'switchyard_dead_letters{broker="kafka",connection="default",status="new"} 2.0' in text
    assert 'switchyard_dead_letters{broker="kafka",connection="default",status="archived"} 1.0' in text
