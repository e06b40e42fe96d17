"""Crash drills at full size: each process SIGKILLed 20 times at seeded random points during its work
(tests/drills/crash.py). The outbox relay's 20 kills are tests/outbox/test_reliability.py, which `make drills` runs."""

import pytest

from tests.drills import crash
from tests.drills.test_crash import check
from tests.drills.test_hostile_input import SEED

pytestmark = pytest.mark.django_db(transaction=True)

KILLS = 20


def test_it_loses_no_saga_event_across_20_kills_of_the_saga_ingest(tmp_path):
    check("crash: saga-event ingest (20 kills)", crash.saga_ingest(KILLS, SEED, tmp_path, n=8_000))


def test_it_loses_no_dead_letter_across_20_kills_of_the_dlq_ingest(tmp_path):
    check("crash: dead-letter ingest (20 kills)", crash.dlq_ingest(KILLS, SEED, tmp_path, n=2_000))


def test_it_loses_no_replayed_message_across_20_kills_of_the_celery_worker(world, tmp_path):
    check("crash: Celery worker, replay (20 kills)", crash.celery_replay(world, KILLS, SEED, tmp_path, n=3_000))


def test_it_samples_correctly_after_20_kills_of_the_sampler():
    check("crash: sampler (20 kills)", crash.sampler(KILLS, SEED))
