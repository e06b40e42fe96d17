"""Hostile input at full size: at least 10,000 generated requests over every URL pattern, form and API body, with
three seeds (DRILLS_SEED picks the first). The fast cut of the same drill is tests/drills/test_hostile_input.py."""

from tests.drills.test_hostile_input import SEED, drill


def test_it_answers_ten_thousand_hostile_requests_without_a_500_or_an_unclear_rejection(transactional_db, world):
    tally = drill(world, 10_500, "hostile input (pages, forms, API; full)", seeds=(SEED, SEED + 1, SEED + 2))
    assert tally.inputs >= 10_000
    assert tally.counts["http_500"] == 0 and tally.counts["unclear"] == 0, "\n".join(tally.failures)
