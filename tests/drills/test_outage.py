"""Outage drills (tests/drills/outage.py): a broker of the drill's own stopped mid-operation and started again."""

import pytest

from tests.drills import figures, outage

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_holds_outbox_rows_visibly_while_a_broker_is_down_and_sends_them_all_when_it_returns(
    world, settings, tmp_path
):
    result = outage.outbox_relay(world, settings, tmp_path)
    figures.record(
        "outage: NATS stopped under the outbox relay (fast)",
        inputs=result.inputs,
        http_500=result.http_500,
        lost=result.lost,
        duplicated=result.duplicated,
        restarts=result.restarts,
    )
    print(f"\noutage: {result}")
    assert not result.notes, result.notes
    assert (result.http_500, result.lost) == (0, 0)


def test_it_shows_a_dlq_source_down_with_its_reason_and_loses_nothing_when_the_broker_returns(
    world, settings, tmp_path
):
    result = outage.dlq_ingest(world, settings, tmp_path)
    figures.record(
        "outage: NATS stopped under the dead-letter ingest (fast)",
        inputs=result.inputs,
        http_500=result.http_500,
        lost=result.lost,
        duplicated=result.duplicated,
        restarts=result.restarts,
    )
    print(f"\noutage: {result}")
    assert not result.notes, result.notes
    assert (result.http_500, result.lost, result.duplicated) == (0, 0, 0)
