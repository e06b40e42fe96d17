"""One input layer for saga actions (sagas/forms.py): the page, the API and the `saga` command check the same fields,
and the timeline never renders an evidence link that is not http(s)."""

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from console import operations
from console.models import Operation
from sagas.models import SagaStepEvent
from tests.sagas.helpers import act, ev, post_events

HOSTILE = ["javascript:alert(document.cookie)", "JavaScript:alert(1)", " javascript:alert(1)", "data:text/html,<b>"]


def _failed_saga(world, saga_id="s1"):
    post_events(Client(), world.token(world.operator), ev(saga_id, "charge", status="failed", seq=1))


@pytest.mark.parametrize("link", HOSTILE)
def test_it_refuses_a_non_http_evidence_link_from_the_page(world, link):
    _failed_saga(world)
    response = world.client(world.operator).post(
        "/sagas/s1/actions/resolve", {"reason": "r", "idempotency_key": "k", "note": "fixed", "evidence_url": link}
    )
    html = response.content.decode()
    assert response.status_code == 200 and 'data-testid="action-error"' in html
    assert "evidence url: must be an http(s) link" in html
    assert Operation.objects.count() == 0


@pytest.mark.parametrize("link", HOSTILE)
def test_it_refuses_a_non_http_evidence_link_from_the_api(world, link):
    _failed_saga(world)
    response = act(world.client(world.operator), "s1", "resolve", note="fixed", evidence_url=link)
    assert response.status_code == 400
    assert response.json()["fields"] == {"evidence_url": ["must be an http(s) link"]}
    assert Operation.objects.count() == 0


def test_it_refuses_a_non_http_evidence_link_from_the_command(world):
    _failed_saga(world)
    with pytest.raises(CommandError, match="must be an http"):
        call_command(
            "saga", "resolve", "s1", "--user", "operator", "--reason", "r", "--note", "n", "--evidence-url", HOSTILE[0]
        )
    assert Operation.objects.count() == 0


def test_it_refuses_wrong_typed_fields_in_the_api_with_field_errors(world):
    _failed_saga(world)
    operator = world.client(world.operator)
    response = act(operator, "s1", "resolve", note={"how": "by hand"}, evidence_url=["https://x.example/"])
    assert response.status_code == 400
    assert response.json()["fields"] == {"note": ["must be a string"], "evidence_url": ["must be a string"]}
    response = act(operator, "s1", "resolve", note="n" * 5001)
    assert response.status_code == 400 and "at most 5000" in response.json()["fields"]["note"][0]


def test_it_stores_an_https_link_from_the_page_and_renders_it(world):
    _failed_saga(world)
    response = world.client(world.operator).post(
        "/sagas/s1/actions/resolve",
        {"reason": "r", "idempotency_key": "k", "note": "fixed", "evidence_url": "https://tickets.example/7"},
    )
    assert 'data-testid="action-started"' in response.content.decode()
    assert operations.execute(Operation.objects.get().pk) == "succeeded"
    assert SagaStepEvent.objects.get(status="resolved").evidence_url == "https://tickets.example/7"
    page = world.client(world.viewer).get("/sagas/s1/").content.decode()
    assert '<a href="https://tickets.example/7" rel="noopener noreferrer" target="_blank">evidence</a>' in page


def test_it_never_renders_a_stored_javascript_link_as_an_href(world):
    """A row stored before the form checked the link (the page used to accept any value): text, not a link."""
    _failed_saga(world)
    op_id = act(world.client(world.operator), "s1", "resolve", note="n").json()["operation"]["id"]
    assert operations.execute(op_id) == "succeeded"
    SagaStepEvent.objects.filter(status="resolved").update(evidence_url="javascript:alert(1)")
    page = world.client(world.viewer).get("/sagas/s1/").content.decode()
    assert "javascript:alert(1)" in page  # shown, so the operator sees what was stored...
    assert 'href="javascript:' not in page.lower()  # ...but never as a link
