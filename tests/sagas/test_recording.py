"""The recording path: extending stored state equals re-deriving the whole history; the dashboard is throttled."""

import asyncio
import math
import random
import time
from datetime import timedelta

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from console.live import group_name
from sagas.models import SagaInstance, SagaStepEvent
from sagas.recording import Row, derive, record_events, validate_event
from tests.sagas.helpers import T0, ev

STATE = ("status", "current_step", "started_at", "updated_at", "finished_at", "state_since", "event_count")


def _record(events):
    return record_events([validate_event(e)[0] for e in events])


def _from_scratch(saga_id: str) -> dict:
    rows = SagaStepEvent.objects.filter(saga_id=saga_id).order_by("seq", "occurred_at", "id")
    return derive([Row(e.saga_id, e.step, e.direction, e.status, e.saga_status, e.occurred_at, e.seq) for e in rows])


def _history(rng: random.Random, saga_id: str) -> list[dict]:
    """A plausible saga: steps execute (some fail and retry), then maybe compensate in reverse, some with no seq."""
    events, seq = [], 0
    steps = [f"step{i}" for i in range(rng.randint(1, 6))]
    done = []
    for step in steps:
        for _ in range(rng.randint(0, 2)):
            seq += 1
            events.append(ev(saga_id, step, status="failed", seq=seq))
        seq += 1
        events.append(ev(saga_id, step, status=rng.choice(["succeeded", "succeeded", "skipped", "started"]), seq=seq))
        if events[-1]["status"] == "succeeded":
            done.append(step)
    if rng.random() < 0.6:
        for step in reversed(done):
            seq += 1
            status = rng.choice(["succeeded", "succeeded", "failed", "started"])
            events.append(ev(saga_id, step, direction="compensate", status=status, seq=seq))
    if rng.random() < 0.3:  # unsequenced events sort after every sequenced one, by time
        events.append(ev(saga_id, "-", status="resolved", occurred_at=(T0 + timedelta(days=1)).isoformat()))
    return events


def test_it_extends_stored_state_exactly_as_a_full_rederive_would(world):
    rng = random.Random(3)
    sagas = {f"r{i}": _history(rng, f"r{i}") for i in range(40)}
    batches = []
    for events in sagas.values():
        cut = [*sorted(rng.sample(range(1, len(events)), k=min(2, len(events) - 1))), len(events)]
        batches += [events[a:b] for a, b in zip([0, *cut[:-1]], cut, strict=True)]
    # Mostly in order, with some batches moved earlier (late arrival) and some delivered twice.
    for _ in range(len(batches) // 5):
        i, j = sorted(rng.sample(range(len(batches)), 2))
        batches.insert(i, batches.pop(j))
    batches += rng.sample(batches, k=5)
    for batch in batches:
        _record(batch)
    for saga_id, events in sagas.items():
        saga = SagaInstance.objects.get(pk=saga_id)
        expected = _from_scratch(saga_id)
        assert {k: getattr(saga, k) for k in STATE} == {k: expected[k] for k in STATE}, saga_id
        assert saga.event_count == len(events) and saga.pending_steps == expected["pending_steps"]
        assert (saga.tail_seq, saga.tail_at) == (expected["tail_seq"], expected["tail_at"])


def test_it_rederives_a_saga_whose_tail_is_not_known(world):
    _record([ev("t1", "reserve", seq=1), ev("t1", "charge", seq=2)])
    # As a row written before the tail columns existed (or by a bulk load): NULL means derive from the history.
    SagaInstance.objects.filter(pk="t1").update(tail_seq=None, tail_at=None, pending_steps=None, status="running")
    _record([ev("t1", "charge", direction="compensate", seq=3), ev("t1", "reserve", direction="compensate", seq=4)])
    saga = SagaInstance.objects.get(pk="t1")
    assert (saga.status, saga.event_count, saga.pending_steps, saga.tail_seq) == ("compensated", 4, [], 4)


def test_it_places_a_late_event_in_history_order(world):
    _record([ev("t2", "reserve", seq=1), ev("t2", "charge", seq=3, status="failed")])
    assert SagaInstance.objects.get(pk="t2").status == "failed"
    _record([ev("t2", "reserve", seq=2)])  # late: sorts before the failure, so the saga stays failed
    saga = SagaInstance.objects.get(pk="t2")
    assert (saga.status, saga.current_step, saga.tail_seq, saga.event_count) == ("failed", "charge", 3, 3)


def test_it_sends_at_most_one_dashboard_update_per_second(world, django_capture_on_commit_callbacks):
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(group_name("dashboard"), channel)
    try:
        started = time.monotonic()
        for i in range(8):
            with django_capture_on_commit_callbacks(execute=True):
                _record([ev(f"d{i}", "reserve", seq=1)])
        elapsed = time.monotonic() - started
        received = [m["payload"] for m in async_to_sync(_drain)(layer, channel, 2.5)]
        # Eight commits: at most one broadcast per one-second window they spanned plus a trailing one — and never
        # none, so the tiles still show the last batch. (The windows are counted, not assumed: on a busy machine the
        # eight commits may take longer than one.)
        windows = math.ceil(elapsed) or 1
        assert 1 <= len(received) <= windows + 1 < 8, (len(received), elapsed)
        assert all(p == {"type": "dashboard", "tile": "sagas"} for p in received)
    finally:
        async_to_sync(layer.group_discard)(group_name("dashboard"), channel)


async def _drain(layer, channel, seconds: float) -> list[dict]:
    """Every message the channel gets within `seconds`."""
    loop = asyncio.get_running_loop()
    end, messages = loop.time() + seconds, []
    while (left := end - loop.time()) > 0:
        try:
            messages.append(await asyncio.wait_for(layer.receive(channel), left))
        except TimeoutError:
            break
    return messages
