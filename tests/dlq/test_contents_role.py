"""SWITCHYARD_CONTENTS_ROLE=operator: a viewer sees that a dead letter failed and why (exception, failure headers),
never its body, the values of its other headers, or an answer to a body search; by default nothing changes."""

import base64
import json

import pytest

from dlq.models import DeadLetterSource
from tests.dlq.test_inbox import _store
from tests.dlq.test_live_filter import _watch

SECRET = "CARD-4111-1111-1111-1111"
HEADERS = {
    "x-exception-type": b"app.PaymentDeclined",
    "x-exception-message": b"declined by issuer",
    "x-original-destination": b"payments",
    "x-customer-email": b"alice@example.com",
}


@pytest.fixture
def letter(db):
    source = DeadLetterSource.objects.create(broker="kafka", destination="payments.DLQ")
    body = json.dumps({"card": SECRET, "tier": "platinum"}).encode()
    return _store(source, 1, body=body, headers=HEADERS)[0]


@pytest.fixture
def operator_only(settings):
    settings.CONTENTS_ROLE = "operator"


def test_it_hides_the_body_and_other_header_values_on_the_page_from_a_viewer(letter, world, operator_only):
    page = world.client(world.viewer).get(f"/dead-letters/{letter.pk}/").content.decode()
    assert SECRET not in page and "alice@example.com" not in page and 'data-testid="body-json"' not in page
    assert "message contents are visible to operators (SWITCHYARD_CONTENTS_ROLE)" in page
    assert "app.PaymentDeclined" in page and "declined by issuer" in page  # why it failed: still there
    assert '<td class="mono">x-original-destination</td><td class="mono">payments</td>' in page
    assert (
        '<td class="mono">x-customer-email</td><td class="mono"><span class="muted" data-testid="header-hidden">'
        in page
    )
    assert page.count('data-testid="header-hidden"') == 1

    page = world.client(world.operator).get(f"/dead-letters/{letter.pk}/").content.decode()
    assert SECRET in page and "alice@example.com" in page and "Edit &amp; replay" in page
    assert "SWITCHYARD_CONTENTS_ROLE" not in page


def test_it_shows_a_viewer_the_body_by_default(letter, world):
    page = world.client(world.viewer).get(f"/dead-letters/{letter.pk}/").content.decode()
    assert SECRET in page and "alice@example.com" in page and "SWITCHYARD_CONTENTS_ROLE" not in page
    data = world.client(world.viewer).get(f"/api/v1/dead-letters/{letter.pk}").json()
    assert SECRET in base64.b64decode(data["body_base64"]).decode() and "contents_hidden" not in data


def test_it_leaves_the_body_out_of_the_api_and_the_export_for_a_viewer(letter, world, operator_only):
    viewer = world.client(world.viewer)
    data = viewer.get(f"/api/v1/dead-letters/{letter.pk}").json()
    exported = b"".join(viewer.get("/api/v1/dead-letters/export").streaming_content).decode()
    (line,) = [json.loads(line) for line in exported.splitlines()]
    for answer in (data, line):
        assert SECRET not in json.dumps(answer) and "alice@example.com" not in json.dumps(answer)
        assert "body_base64" not in answer and "body_text" not in answer
        assert answer["headers"]["x-customer-email"] is None
        assert answer["headers"]["x-exception-type"] == "app.PaymentDeclined"
        assert answer["contents_hidden"] == "message contents are visible to operators (SWITCHYARD_CONTENTS_ROLE)"
        assert answer["exception_message"] == "declined by issuer" and answer["body_size"] == letter.body_size
    listed = viewer.get("/api/v1/dead-letters").content.decode()  # the list never carried bodies
    assert str(letter.pk) in listed and SECRET not in listed and "alice@example.com" not in listed

    operator = world.client(world.operator)
    data = operator.get(f"/api/v1/dead-letters/{letter.pk}").json()
    assert SECRET in base64.b64decode(data["body_base64"]).decode()
    assert data["headers"]["x-customer-email"] == "alice@example.com"
    exported = b"".join(operator.get("/api/v1/dead-letters/export").streaming_content).decode()
    assert SECRET in base64.b64decode(json.loads(exported)["body_base64"]).decode()


def test_it_refuses_a_body_search_to_a_viewer_rather_than_answer_it(letter, world, operator_only):
    viewer = world.client(world.viewer)
    for url in ("/api/v1/dead-letters", "/api/v1/dead-letters/export", "/api/v1/dead-letter-groups"):
        response = viewer.get(url, {"q": "platinum"})
        assert response.status_code == 403, url
        assert "SWITCHYARD_CONTENTS_ROLE" in response.json()["fields"]["q"][0]
    # A header filter would read hidden header values by trial; on a failure header it stays.
    response = viewer.get("/api/v1/dead-letters", {"header": "x-customer-email=alice@example.com"})
    assert response.status_code == 403 and "header" in response.json()["fields"]
    response = viewer.get("/api/v1/dead-letters", {"header": "x-original-destination=payments"})
    assert [d["id"] for d in response.json()["dead_letters"]] == [letter.pk]

    page = viewer.get("/dead-letters/", {"q": "platinum"}).content.decode()
    assert 'data-testid="filter-error"' in page and "body search is not available" in page
    assert f'id="dl-{letter.pk}"' not in page

    operator = world.client(world.operator)
    assert [d["id"] for d in operator.get("/api/v1/dead-letters", {"q": "platinum"}).json()["dead_letters"]] == [
        letter.pk
    ]
    assert f'id="dl-{letter.pk}"' in operator.get("/dead-letters/", {"q": "platinum"}).content.decode()


def test_it_lets_a_viewer_search_bodies_by_default(letter, world):
    response = world.client(world.viewer).get("/api/v1/dead-letters", {"q": "platinum"})
    assert [d["id"] for d in response.json()["dead_letters"]] == [letter.pk]


def test_it_takes_no_live_rows_for_a_refused_body_search(transactional_db, world, settings):
    settings.CONTENTS_ROLE = "operator"
    first, _, ids = _watch(world, "/ws/dlq/?q=timeout", ("orders", "payment timeout"), ("orders", "bad card"))
    assert "afterbegin:#dl-rows" not in first and f'id="dl-{ids[0]}"' not in first

    settings.CONTENTS_ROLE = "viewer"
    first, _, ids = _watch(world, "/ws/dlq/?q=timeout", ("orders", "payment timeout"), ("orders", "bad card"))
    assert f'id="dl-{ids[0]}"' in first and f'id="dl-{ids[1]}"' not in first


def test_it_offers_body_search_only_to_who_may_use_it(letter, world, settings):
    assert 'name="q"' in world.client(world.viewer).get("/dead-letters/").content.decode()
    settings.CONTENTS_ROLE = "operator"
    assert 'name="q"' not in world.client(world.viewer).get("/dead-letters/").content.decode()
    assert 'name="q"' in world.client(world.operator).get("/dead-letters/").content.decode()
