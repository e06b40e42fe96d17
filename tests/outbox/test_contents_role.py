"""SWITCHYARD_CONTENTS_ROLE=operator: a viewer sees an outbox event's envelope and why it failed, never its payload
(inline or claim check) or the publisher's header values; by default nothing changes."""

import pytest
from django.db import transaction

from outbox import publish
from outbox.models import OutboxEvent

SECRET = "IBAN-DE89-3704-0044-0532-0130-00"


def _event(**headers) -> OutboxEvent:
    with transaction.atomic():
        event = publish(
            "kafka://payouts", "p-1", "PayoutRequested", {"iban": SECRET}, headers=headers, correlation_id="PAY-1"
        )
    OutboxEvent.objects.filter(pk=event.pk).update(status="failed", attempts=8, last_error="broker unreachable")
    return event


@pytest.fixture
def operator_only(settings):
    settings.CONTENTS_ROLE = "operator"


def test_it_hides_the_payload_and_publisher_headers_on_the_page_from_a_viewer(db, world, operator_only):
    event = _event(**{"x-tenant-secret": "tenant-s3cret"})
    page = world.client(world.viewer).get(f"/outbox/events/{event.pk}/").content.decode()
    assert SECRET not in page and "tenant-s3cret" not in page and 'data-testid="payload-json"' not in page
    assert "message contents are visible to operators (SWITCHYARD_CONTENTS_ROLE)" in page
    assert "broker unreachable" in page and "PayoutRequested v1" in page  # what failed and why: still there
    assert f'<td class="mono">x-event-id</td><td class="mono">{event.event_id}</td>' in page
    assert (
        '<td class="mono">x-tenant-secret</td><td class="mono"><span class="muted" data-testid="header-hidden">' in page
    )

    page = world.client(world.operator).get(f"/outbox/events/{event.pk}/").content.decode()
    assert SECRET in page and "tenant-s3cret" in page and "SWITCHYARD_CONTENTS_ROLE" not in page


def test_it_leaves_the_payload_out_of_the_api_for_a_viewer(db, world, operator_only):
    event = _event(**{"x-tenant-secret": "tenant-s3cret"})
    response = world.client(world.viewer).get(f"/api/v1/outbox/events/{event.pk}")
    data = response.json()
    assert response.status_code == 200 and SECRET not in response.content.decode()
    assert not {"payload", "payload_base64", "payload_ref"} & data.keys()
    assert data["headers"]["x-tenant-secret"] is None and data["headers"]["x-correlation-id"] == "PAY-1"
    assert data["contents_hidden"] == "message contents are visible to operators (SWITCHYARD_CONTENTS_ROLE)"
    assert data["last_error"] == "broker unreachable"

    data = world.client(world.operator).get(f"/api/v1/outbox/events/{event.pk}").json()
    assert data["payload"] == {"iban": SECRET} and data["headers"]["x-tenant-secret"] == "tenant-s3cret"


def test_it_refuses_a_claim_check_download_to_a_viewer(db, world, operator_only, settings):
    settings.OUTBOX_CLAIM_CHECK_BYTES = 16
    event = _event()
    assert event.claim_check_id is not None
    url = f"/api/v1/outbox/payloads/{event.claim_check_id}"
    response = world.client(world.viewer).get(url)
    assert response.status_code == 403 and SECRET not in response.content.decode()
    assert "SWITCHYARD_CONTENTS_ROLE" in response.json()["error"]
    token = world.token(world.viewer)  # a machine client with a viewer token is refused the same way
    assert world.client(None).get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 403
    page = world.client(world.viewer).get(f"/outbox/events/{event.pk}/").content.decode()
    assert SECRET not in page and url not in page and 'data-testid="claim-check"' not in page

    response = world.client(world.operator).get(url)
    assert response.status_code == 200 and SECRET in response.content.decode()


def test_it_shows_a_viewer_the_payload_by_default(db, world, settings):
    settings.OUTBOX_CLAIM_CHECK_BYTES = 16
    event = _event(**{"x-tenant-secret": "tenant-s3cret"})
    viewer = world.client(world.viewer)
    page = viewer.get(f"/outbox/events/{event.pk}/").content.decode()
    assert SECRET in page and "tenant-s3cret" in page and "SWITCHYARD_CONTENTS_ROLE" not in page
    assert viewer.get(f"/api/v1/outbox/events/{event.pk}").json()["payload_ref"]["size"] > 16
    assert SECRET in viewer.get(f"/api/v1/outbox/payloads/{event.claim_check_id}").content.decode()
