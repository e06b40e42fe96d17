"""Hostile saga events: each is a 400 with a short, clear message — never a 500, never the whole input echoed back —
and the valid events of a batch are still recorded."""

import json

import pytest
from django.test import Client

from sagas.models import SagaInstance, SagaStepEvent
from tests.sagas.helpers import ev, post_events

BIG = 300_000

WRONG = {
    "seq as a string": {"seq": "1"},
    "seq as a float": {"seq": 1.5},
    "seq as a bool": {"seq": True},
    "seq past int8": {"seq": 2**63},
    "seq far past int8": {"seq": 10**40},
    "attempt past int4": {"attempt": 2**31},
    "duration past int4": {"duration_ms": 2**31},
    "partition past int4": {"broker": {"partition": 2**31}},
    "offset past int8": {"broker": {"offset": 2**63}},
    "negative seq": {"seq": -1},
    "step as a list": {"step": ["a"]},
    "step as an object": {"step": {"a": 1}},
    "step as null": {"step": None},
    "error as a string": {"error": "boom"},
    "error message as a number": {"error": {"message": 5}},
    "context as a list": {"context": [1, 2]},
    "occurred_at as a number": {"occurred_at": 1700000000},
    "occurred_at without a zone": {"occurred_at": "2026-01-01T12:00:00"},
    "occurred_at out of range": {"occurred_at": "9999-12-31T23:59:59-14:00"},
    "occurred_at year zero": {"occurred_at": "0000-01-01T00:00:00Z"},
    "NUL in the step": {"step": "a\x00b"},
    "NUL in the saga id": {"saga_id": "s\x00"},
    "NUL in the error message": {"error": {"message": "bad \x00 byte"}},
    "NUL in a context value": {"context": {"a": "\x00"}},
    "NUL in a context key": {"context": {"\x00": 1}},
    "lone surrogate in the step": {"step": "\ud800"},
    "lone surrogate deep in the context": {"context": {"a": [{"b": "\udfff"}]}},
    "unknown field": {"colour": "blue"},
    "huge event id": {"event_id": "x" * BIG},
}


@pytest.mark.parametrize("change", WRONG.values(), ids=WRONG.keys())
def test_it_answers_a_wrong_event_with_a_short_400_and_records_nothing(world, change):
    body = {**ev("s1", "a", seq=1), **change}
    response = post_events(Client(), world.token(world.operator), body)
    assert response.status_code == 400, response.content[:500]
    answer = response.json()
    assert answer["error"] == "invalid saga event" and answer["fields"], answer
    assert len(response.content) < 2_000, response.content[:500]
    assert SagaStepEvent.objects.count() == 0


@pytest.mark.parametrize("change", WRONG.values(), ids=WRONG.keys())
def test_it_keeps_the_valid_events_of_a_batch_with_a_wrong_one(world, change):
    good = ev("s2", "a", seq=1)
    response = post_events(Client(), world.token(world.operator), [good, {**ev("s1", "a", seq=1), **change}])
    assert response.status_code == 200, response.content[:500]
    assert [r["result"] for r in response.json()["results"]] == ["created", "invalid"]
    assert list(SagaInstance.objects.values_list("pk", flat=True)) == ["s2"]


@pytest.mark.parametrize("depth", [100, 1_000, 20_000])
def test_it_answers_deeply_nested_brackets_with_a_400(world, depth):
    token = world.token(world.operator)
    response = post_events(Client(), token, "[" * depth + "]" * depth)  # a str is sent as is
    assert response.status_code == 400, response.content[:500]
    assert len(response.content) < 500
    unclosed = post_events(Client(), token, "[" * depth)
    assert unclosed.status_code == 400 and "not valid JSON" in unclosed.json()["error"]
    deep_context = ev("s3", "a", seq=1)
    body = json.dumps(deep_context)[:-1] + ', "context": {"a": ' + "[" * depth + "]" * depth + "}}"
    response = post_events(Client(), token, body)
    assert response.status_code in (201, 400), response.content[:500]
    assert SagaStepEvent.objects.filter(saga_id="s3").count() == (1 if response.status_code == 201 else 0)


def test_it_records_a_whole_number_sent_as_a_float(world):
    """JSON Schema's integer admits 2.0 (a JavaScript producer may send one); the int8 column refused "2.0": a 500."""
    body = {**ev("s1", "a"), "seq": 2.0, "attempt": 3.0, "broker": {"transport": "kafka", "partition": 1.0}}
    assert post_events(Client(), world.token(world.operator), body).status_code == 201
    event = SagaStepEvent.objects.get()
    assert (event.seq, event.attempt, event.partition) == (2, 3, 1)


def test_it_says_how_long_an_echoed_value_was_instead_of_echoing_it(world):
    response = post_events(Client(), world.token(world.operator), {**ev("s1", "a"), "step": "y" * BIG})
    message = response.json()["fields"]["step"][0]
    assert response.status_code == 400 and len(message) < 400
    assert f"{BIG + 2} characters in all" in message and "is too long" in message


def test_it_answers_a_body_that_is_not_utf8_with_a_400(world):
    response = post_events(Client(), world.token(world.operator), b'{"a": "\xff"}')
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]
