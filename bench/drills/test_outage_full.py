"""The outage drill at full size: 3,000 outbox rows, the drill's own NATS stopped and started again 5 times."""

import pytest

from tests.drills import figures, outage

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_loses_nothing_across_five_outages_of_a_broker(world, settings, tmp_path):
    result = outage.outbox_relay(world, settings, tmp_path, events=3_000, outages=5)
    figures.record(
        "outage: NATS stopped 5 times under the outbox relay",
        inputs=result.inputs,
        http_500=result.http_500,
        lost=result.lost,
        duplicated=result.duplicated,
        restarts=result.restarts,
    )
    assert not result.notes, result.notes
    assert (result.http_500, result.lost) == (0, 0)


def test_it_loses_no_dead_letter_across_five_outages_of_a_broker(world, settings, tmp_path):
    result = outage.dlq_ingest(world, settings, tmp_path, messages=1_000, outages=5)
    figures.record(
        "outage: NATS stopped 5 times under the dead-letter ingest",
        inputs=result.inputs,
        http_500=result.http_500,
        lost=result.lost,
        duplicated=result.duplicated,
        restarts=result.restarts,
    )
    assert not result.notes, result.notes
    assert (result.http_500, result.lost, result.duplicated) == (0, 0, 0)
