"""Hostile input at the edge (console/inputs.py): deep JSON, NUL characters in filters and searches, and error
answers that never echo a whole input back. Each of these was a 500 (or a 300 KB answer) in a first hostile run."""

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from console.inputs import clip
from dlq.consumers import DeadLettersConsumer
from sagas.consumers import SagasConsumer

NUL_QUERIES = [
    "/dead-letters/?q=%00",
    "/dead-letters/?origin=a%00b",
    "/dead-letters/groups/?q=%00",
    "/sagas/?correlation=%00",
    "/sagas/?q%00=1",
    "/outbox/?key=%00",
    "/consumers/?q=%00",
    "/operations/?status=%00",
    "/audit/?actor=%00",
    "/trace/?correlation=%00",
]
NUL_API_QUERIES = [
    "/api/v1/dead-letters?q=%00",
    "/api/v1/dead-letter-groups?q=%00",
    "/api/v1/sagas?correlation=%00",
    "/api/v1/outbox/events?key=%00",
    "/api/v1/operations?status=%00",
    "/api/v1/operations?kind=%00",
    "/api/v1/audit?actor=%00",
    "/api/v1/trace?correlation=%00",
]


@pytest.mark.parametrize("url", NUL_QUERIES)
def test_it_answers_a_nul_in_a_page_filter_with_a_400(world, url):
    response = world.client(world.viewer).get(url)
    assert response.status_code == 400 and b"NUL character" in response.content
    clean = world.client(world.viewer).get(url.replace("%00", "x"))
    assert clean.status_code == 200  # the same filter without the NUL still works


@pytest.mark.parametrize("url", NUL_API_QUERIES)
def test_it_answers_a_nul_in_an_api_filter_with_a_json_400(world, url):
    client = world.client(world.viewer)
    response = client.get(url)
    assert response.status_code == 400 and "NUL character" in response.json()["error"]
    assert client.get(url.replace("%00", "x")).status_code == 200


def test_it_refuses_a_nul_in_a_dead_letter_filter_sent_as_json(world):
    body = {"filter": {"q": "a\x00b"}, "preview": True, "reason": "r", "idempotency_key": "k"}
    response = world.client(world.operator).post("/api/v1/dead-letters/replay", body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert "NUL" in str(response.json())


@pytest.mark.parametrize(
    "consumer, path", [(DeadLettersConsumer, "/ws/dlq/?q=%00"), (SagasConsumer, "/ws/sagas/?q=%00")]
)
def test_it_closes_a_live_socket_whose_filter_holds_a_nul(world, consumer, path):
    async def connect():
        communicator = WebsocketCommunicator(consumer.as_asgi(), path)
        communicator.scope["user"] = world.viewer
        connected, code = await communicator.connect()
        await communicator.disconnect()
        return connected, code

    assert async_to_sync(connect)() == (False, 4400)


@pytest.mark.parametrize("depth", [100, 20_000])
@pytest.mark.parametrize(
    "url", ["/api/v1/operations", "/api/v1/dead-letters/replay", "/api/v1/outbox/events/retry", "/api/v1/saga-events"]
)
def test_it_answers_deep_nesting_in_any_api_body_with_a_short_400(world, url, depth):
    token = world.token(world.admin)
    client = world.client(None)
    for body in ("[" * depth + "]" * depth, "[" * depth, '{"a":' * depth + "1" + "}" * depth):
        response = client.post(url, body, content_type="application/json", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 400, (url, depth, response.content[:300])
        assert len(response.content) < 1000


def test_it_says_why_too_deep_json_is_refused(world):
    response = world.client(world.admin).post("/api/v1/operations", "[" * 20_000, content_type="application/json")
    assert response.json() == {"error": "the request body is not valid JSON: it nests arrays or objects too deeply"}


def test_it_never_echoes_more_than_a_short_prefix_of_the_input(world):
    action = "x" * 5_000
    response = world.client(world.operator).post(f"/api/v1/sagas/s1/actions/{action}", {}, "application/json")
    assert response.status_code == 404
    error = response.json()["error"]
    assert len(error) < 300 and "characters in all" in error


def test_it_clips_text_and_says_how_long_it_was():
    assert clip("short") == "short"
    assert clip("a" * 1000) == "a" * 200 + "… (1000 characters in all)"


def test_it_shows_json_with_a_lone_surrogate_escape_as_text_not_a_500():
    from console.bodies import views

    shown = views(b'{"reason": "\\ud800"}')
    assert shown["json"] is None and shown["text"] == '{"reason": "\\ud800"}'
