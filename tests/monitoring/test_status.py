"""The status rules as pure functions (docs/consumer-status.md)."""

from monitoring.status import Point, estimate_produce_time, evaluate

W = 100.0


def series(lags, progress=None, attached=0, start=0.0, step=20.0):
    progress = progress or [None] * len(lags)
    return [Point(start + i * step, lag, p, attached) for i, (lag, p) in enumerate(zip(lags, progress, strict=True))]


def test_it_is_ok_without_lag_or_when_lag_was_zero_in_the_window():
    assert evaluate(series([0, 0, 0], [1, 1, 1]), 40, W)[0] == "OK"
    assert evaluate(series([5, 0, 3], [1, 6, 6]), 40, W)[0] == "OK"
    assert evaluate([], 40, W) == ("OK", "no data")


def test_it_warns_when_lag_only_grows_while_offsets_move():
    assert evaluate(series([2, 4, 9], [1, 2, 3], attached=1), 40, W)[0] == "WARN"


def test_it_stops_when_no_progress_and_nobody_attached():
    status, reason = evaluate(series([3, 5, 8, 9], [7, 7, 7, 7], attached=0), 60, W)
    assert status == "STOP" and "nobody" in reason


def test_it_stalls_when_members_are_attached_but_offsets_stand_still():
    assert evaluate(series([3, 5, 8, 9], [7, 7, 7, 7], attached=2), 60, W)[0] == "STALL"


def test_it_needs_half_the_window_before_stop():
    assert evaluate(series([3, 5], [7, 7], attached=0), 20, W)[0] == "OK"


def test_it_reports_rewind_when_the_committed_offset_goes_back():
    assert evaluate(series([3, 9, 10], [10, 4, 5], attached=1), 40, W)[0] == "REWIND"


def test_it_applies_the_same_rules_to_queue_depth():
    assert evaluate(series([4, 4, 4, 4]), 60, W)[0] == "STOP"
    assert evaluate(series([4, 4, 4, 4], attached=1), 60, W)[0] == "STALL"
    assert evaluate(series([4, 6, 7, 9], attached=1), 60, W)[0] == "WARN"
    assert evaluate(series([9, 6, 7, 5], attached=1), 60, W)[0] == "OK"


def test_it_interpolates_the_write_time_of_the_committed_message():
    # end offset 10 at t=100, 20 at t=200: offset 14 was the 5th of 10 new messages → about t=150.
    assert estimate_produce_time(14, (100.0, 10), (200.0, 20)) == 150.0
    # No earlier point: the lag is at least as old as the first point that saw it.
    assert estimate_produce_time(14, None, (200.0, 20)) == 200.0
