"""One input layer (issue 15): the inbox's Replay form is a Django form, so a mistyped option is named beside its field
rather than surfacing as a Python conversion error, and nothing is started."""

import pytest

from console.models import Operation
from dlq.models import DeadLetterSource
from tests.dlq.test_inbox import _store


@pytest.fixture
def source(db):
    return DeadLetterSource.objects.create(broker="kafka", destination="orders.DLQ")


def test_it_names_a_mistyped_rate_on_the_replay_form_and_starts_nothing(source, world):
    (dl,) = _store(source)
    body = {"ids": [dl.pk], "reason": "fixed the consumer", "idempotency_key": "k-1", "rate": "fast"}

    page = world.client(world.operator).post("/dead-letters/replay", body, follow=True).content.decode()

    assert "rate: Enter a number." in page
    assert not Operation.objects.exists()


def test_it_still_asks_for_a_reason_first(source, world):
    (dl,) = _store(source)
    body = {"ids": [dl.pk], "reason": " ", "idempotency_key": "k-1", "rate": "fast"}

    page = world.client(world.operator).post("/dead-letters/replay", body, follow=True).content.decode()

    assert "A reason is required." in page and not Operation.objects.exists()


def test_it_saves_a_source_from_the_sources_form_and_refuses_an_unknown_connection(db, world):
    admin = world.client(world.admin)
    form = {"connection": "kafka", "destination": "payments.DLQ", "origin": "payments", "enabled": "on", "reason": "r"}

    admin.post("/dead-letters/sources/save", form)
    refused = admin.post("/dead-letters/sources/save", {**form, "connection": "kafka:nowhere"}, follow=True)

    (saved,) = DeadLetterSource.objects.all()
    assert (saved.broker, saved.destination, saved.origin, saved.enabled) == ("kafka", "payments.DLQ", "payments", True)
    assert "Choose a configured connection and a destination." in refused.content.decode()


def test_it_names_a_mistyped_rate_at_the_replay_preview_instead_of_carrying_it_to_the_confirm(source, world):
    (dl,) = _store(source)

    html = world.client(world.operator).post("/dead-letters/replay/preview", {"ids": [dl.pk], "rate": "fast"})

    html = html.content.decode()
    assert 'data-testid="replay-preview-error"' in html and "rate: Enter a number." in html
    assert 'name="selection"' not in html  # nothing frozen to confirm


def test_it_still_names_a_bad_filter_field_at_the_replay_preview(source, world):
    _store(source)

    html = world.client(world.operator).post("/dead-letters/replay/preview", {"since": "yesterday-ish"})

    assert "since:" in html.content.decode() and not Operation.objects.exists()
