"""SWITCHYARD_CONTENTS_ROLE=operator: a viewer sees a saga's state and history, not its data (the Data panel and
the API's context); by default nothing changes."""

import pytest

from sagas.recording import record_events, validate_event
from tests.sagas.helpers import ev

SECRET = "passport-X1234567"


@pytest.fixture
def saga(world):
    event = ev("data-1", "reserve", status="failed", seq=1, context={"passport": SECRET}, error={"type": "app.Refused"})
    record_events([validate_event(event)[0]])
    return "data-1"


def test_it_hides_the_data_panel_and_the_api_context_from_a_viewer(saga, world, settings):
    settings.CONTENTS_ROLE = "operator"
    viewer = world.client(world.viewer)
    page = viewer.get(f"/sagas/{saga}/").content.decode()
    assert SECRET not in page and 'data-testid="saga-data"' not in page
    assert "message contents are visible to operators (SWITCHYARD_CONTENTS_ROLE)" in page
    assert "app.Refused" in page  # why it failed: still there
    response = viewer.get(f"/api/v1/sagas/{saga}")
    data = response.json()
    assert SECRET not in response.content.decode() and "context" not in data
    assert data["last_error_type"] == "app.Refused" and "SWITCHYARD_CONTENTS_ROLE" in data["contents_hidden"]

    operator = world.client(world.operator)
    assert SECRET in operator.get(f"/sagas/{saga}/").content.decode()
    assert operator.get(f"/api/v1/sagas/{saga}").json()["context"] == {"passport": SECRET}


def test_it_shows_a_viewer_the_data_by_default(saga, world):
    viewer = world.client(world.viewer)
    page = viewer.get(f"/sagas/{saga}/").content.decode()
    assert SECRET in page and 'data-testid="saga-data"' in page and "SWITCHYARD_CONTENTS_ROLE" not in page
    data = viewer.get(f"/api/v1/sagas/{saga}").json()
    assert data["context"] == {"passport": SECRET} and "contents_hidden" not in data
