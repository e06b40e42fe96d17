"""The ingest paths at full size (tests/drills/ingest.py): 5,000 saga events over HTTP, 2,000 over Kafka, 400 dead
letters (three of 10 MB) through the real RabbitMQ DLQ ingest worker and their pages."""

import pytest

from tests.drills import figures, ingest
from tests.drills.test_hostile_input import SEED

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_loses_no_valid_saga_event_over_http(world):
    counts = ingest.saga_http(world, 5_000, SEED + 1)
    figures.record("saga events over HTTP (full)", **vars(counts))
    assert (counts.http_500, counts.unclear, counts.lost) == (0, 0, 0)


def test_it_loses_no_valid_saga_event_over_kafka():
    counts = ingest.saga_kafka(2_000, SEED + 1)
    figures.record("saga events over Kafka (full)", **vars(counts))
    assert counts.lost == 0


def test_it_loses_no_hostile_dead_letter_and_shows_each(world, tmp_path):
    counts = ingest.dead_letters(world, 400, SEED + 1, tmp_path, big=3)
    figures.record("dead letters, RabbitMQ DLQ (full)", **vars(counts))
    assert (counts.http_500, counts.lost) == (0, 0)
