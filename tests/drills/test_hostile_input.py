"""Hostile input through every URL pattern, every form and the JSON API (tests/drills/hostile.py): no 500, every
rejection a 4xx with a short message. The full 10,000-case run is bench/drills/test_hostile_full.py."""

import os

from tests.drills import figures, hostile

SEED = int(os.environ.get("DRILLS_SEED", "14"))


def drill(world, count: int, name: str, seeds: tuple[int, ...] = (SEED,)) -> hostile.Tally:
    sane = hostile.seed(world.admin)
    client = world.client(world.admin)
    cases = [case for seed in seeds for case in hostile.cases(sane, count // len(seeds), seed)]
    tally = hostile.run(cases, client, world.token(world.admin))
    figures.record(name, inputs=tally.inputs, http_500=tally.counts["http_500"], unclear=tally.counts["unclear"])
    return tally


def test_it_answers_every_hostile_request_without_a_500_and_with_a_clear_rejection(transactional_db, world):
    tally = drill(world, 1_200, "hostile input (pages, forms, API; fast)")
    assert tally.inputs >= 1_000
    assert tally.counts["http_500"] == 0 and tally.counts["unclear"] == 0, "\n".join(tally.failures)


def test_it_reaches_every_url_pattern():
    patterns = {r.pattern for r in hostile.routes()}
    assert len(patterns) > 90 and "api/v1/saga-events" in patterns and "dead-letters/replay" in patterns
    assert {"reason", "idempotency_key", "evidence_url", "q"} <= set(hostile.field_names())
