"""The same replay, compensation and resolve posted twice at once runs once (tests/drills/double.py)."""

import pytest

from tests.drills import double, figures

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_runs_a_replay_a_compensation_and_a_resolve_posted_twice_at_once_only_once(world):
    counts, problems = double.drill(world, rounds=4)
    figures.record("double submission (fast)", **vars(counts))
    assert counts.inputs == 24
    assert not problems, "\n".join(problems)
