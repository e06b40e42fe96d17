"""Hostile items through every ingest path (tests/drills/ingest.py): saga events over HTTP and Kafka, dead letters on
a RabbitMQ DLQ through the real ingest worker. Nothing valid is lost; nothing answers 500. bench/drills has more."""

import pytest

from tests.drills import figures, ingest
from tests.drills.test_hostile_input import SEED

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_records_every_valid_saga_event_sent_over_http_among_hostile_ones(world):
    counts = ingest.saga_http(world, 400, SEED)
    figures.record("saga events over HTTP (fast)", **vars(counts))
    assert (counts.http_500, counts.unclear, counts.lost) == (0, 0, 0)


def test_it_records_every_valid_saga_event_sent_over_kafka_among_hostile_ones():
    counts = ingest.saga_kafka(200, SEED)
    figures.record("saga events over Kafka (fast)", **vars(counts))
    assert counts.lost == 0


def test_it_stores_every_hostile_dead_letter_and_shows_each_without_a_500(world, tmp_path):
    counts = ingest.dead_letters(world, 40, SEED, tmp_path)
    figures.record("dead letters, RabbitMQ DLQ (fast)", **vars(counts))
    assert (counts.http_500, counts.lost) == (0, 0)
