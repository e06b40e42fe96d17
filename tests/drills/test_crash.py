"""Crash drills, a few kills each (tests/drills/crash.py); bench/drills/test_crash_full.py kills each 20 times. The
outbox relay's is tests/outbox/test_reliability.py (20 kills), the dead-letter replay runner's tests/dlq/…"""

import pytest

from tests.drills import crash, figures
from tests.drills.test_hostile_input import SEED

pytestmark = pytest.mark.django_db(transaction=True)

KILLS = 2


def check(name: str, counts: crash.Counts) -> None:
    figures.record(name, **counts.figures())
    print(f"\n{name}: {counts}")
    assert counts.lost == 0 and counts.unmarked == 0, counts
    assert counts.restarts >= 1, "no restart moved the work on: the kills landed after the work was done"


def test_it_loses_no_saga_event_when_the_saga_ingest_is_killed(tmp_path):
    check("crash: saga-event ingest (fast)", crash.saga_ingest(KILLS, SEED, tmp_path))


def test_it_loses_no_dead_letter_when_the_dlq_ingest_is_killed(tmp_path):
    check("crash: dead-letter ingest (fast)", crash.dlq_ingest(KILLS, SEED, tmp_path))


def test_it_loses_no_replayed_message_when_the_celery_worker_is_killed(world, tmp_path):
    check("crash: Celery worker, replay (fast)", crash.celery_replay(world, KILLS, SEED, tmp_path))


def test_it_samples_correctly_after_the_sampler_is_killed_mid_pass():
    check("crash: sampler (fast)", crash.sampler(KILLS, SEED))
