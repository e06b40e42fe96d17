"""The API's one input layer for what every action carries (issue 15): console.auth.json_object for "the body must be
a JSON object" and console.forms.ApiReasonForm (through console.api.require_reason_and_key) for the reason and the
idempotency key, in every app."""

import pytest

ACTIONS = ["/api/v1/operations", "/api/v1/dead-letters/replay", "/api/v1/outbox/events/retry"]


@pytest.mark.parametrize("url", ACTIONS)
def test_it_names_a_wrong_typed_reason_or_key_instead_of_calling_it_missing(world, url):
    body = {"kind": "demo", "ids": [1], "reason": 42, "idempotency_key": ["k"]}

    refused = world.client(world.admin).post(url, body, content_type="application/json")

    assert refused.status_code == 400
    fields = refused.json()["fields"]
    assert (fields["reason"], fields["idempotency_key"]) == (["must be a string"], ["must be a string"])


@pytest.mark.parametrize("url", ACTIONS)
def test_it_still_says_which_of_reason_and_key_is_missing(world, url):
    refused = world.client(world.admin).post(url, {"reason": "  "}, content_type="application/json")

    assert refused.status_code == 400
    assert refused.json()["fields"] == {
        "reason": ["a reason is required"],
        "idempotency_key": ["an idempotency_key (1 to 200 characters) is required"],
    }


@pytest.mark.parametrize("url", [*ACTIONS, "/api/v1/sagas/bulk/retry-step", "/api/v1/alert-rules"])
def test_it_answers_a_body_that_is_not_an_object_the_same_way_everywhere(world, url):
    refused = world.client(world.admin).post(url, [1, 2], content_type="application/json")

    assert (refused.status_code, refused.json()["error"]) == (400, "the body must be a JSON object")
