"""Status rules in Burrow's spirit, as pure functions over a sliding window of samples (docs/consumer-status.md).

Burrow sees every commit from __consumer_offsets; we see committed offsets only at sample times, so "is anyone
committing?" is answered by the group's members (or a queue's consumers / in-flight messages): a window with no
progress while lagging is STALL when someone is attached and STOP when nobody is.
"""

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Point:
    time: float  # seconds since the epoch
    lag: int | None  # messages behind, or queue depth / backlog
    progress: int | None = None  # committed offset (sum for a group); None for queues
    attached: int | None = None  # members / consumers / in-flight; None = the broker cannot tell


def evaluate(points: Sequence[Point], now: float, window: float) -> tuple[str, str]:
    """(status, reason) of one series. Steps, on the points inside [now - window, now]:

    1. No points, or the latest lag is unknown → OK ("no data").
    2. STOP if lagging throughout, no progress anywhere in the window, the window is at least half covered, and
       nobody is attached (unknown counts as nobody); STALL if the same holds with someone attached. Queues have no
       progress counter: no progress = depth never went down and stood still (or nobody is attached).
    3. OK if the lag was zero at any point (Burrow's "recent zero lag" guard against false alarms on slow topics).
    4. REWIND if the progress counter went back between two points.
    5. WARN if the lag never went down and ended higher than it started.
    6. Otherwise OK.
    """
    recent = sorted((p for p in points if p.time >= now - window and p.lag is not None), key=lambda p: p.time)
    if not recent:
        return "OK", "no data"
    last = recent[-1]
    if last.lag == 0:
        return "OK", "no lag"
    lags = [p.lag for p in recent]
    if min(lags) == 0:
        return "OK", "lag was zero within the window"
    covered = len(recent) >= 2 and recent[-1].time - recent[0].time >= window / 2
    if recent[0].progress is not None:
        stuck = all(b.progress == a.progress for a, b in zip(recent, recent[1:], strict=False))
    else:
        # A queue has no offset: it is stuck when its depth never went down and either stood still (consumers
        # attached but nothing taken) or nobody is attached; a depth growing under attached consumers is WARN.
        never_down = all(b.lag >= a.lag for a, b in zip(recent, recent[1:], strict=False))
        stuck = never_down and (len(set(lags)) == 1 or not last.attached)
    if covered and stuck:
        if last.attached:
            return "STALL", f"{last.attached} attached but no progress for {int(last.time - recent[0].time)} s"
        return "STOP", f"no progress and nobody consuming for {int(last.time - recent[0].time)} s"
    progress = [p.progress for p in recent if p.progress is not None]
    if any(b < a for a, b in zip(progress, progress[1:], strict=False)):
        return "REWIND", "committed offset went back"
    if len(recent) >= 3 and all(b >= a for a, b in zip(lags, lags[1:], strict=False)) and lags[-1] > lags[0]:
        return "WARN", f"lag grew from {lags[0]} to {lags[-1]}"
    return "OK", "consuming"


def worst(statuses) -> str:
    from monitoring.models import RANK

    return max(statuses, key=lambda s: RANK.get(s, 0), default="OK")


def estimate_produce_time(committed: int, before: tuple[float, int] | None, after: tuple[float, int]) -> float:
    """When the message at offset `committed` was written, from two sampled (time, end offset) points.

    `before` has end ≤ committed (the message did not exist yet), `after` has end > committed. Linear interpolation
    between them; without `before` (the lag predates our history) the answer is `after`'s time, a lower bound on the
    lag. Documented in docs/decisions/0040-lag-seconds-by-interpolation.md.
    """
    t1, e1 = after
    if before is None:
        return t1
    t0, e0 = before
    if e1 <= e0:
        return t1
    fraction = min(1.0, max(0.0, (committed - e0 + 1) / (e1 - e0)))
    return t0 + fraction * (t1 - t0)


def evaluate_partition(
    lag: int,
    attached: int | None,
    now: float,
    window: float,
    first_seen: float,
    progressed_at: float,
    zero_at: float | None,
    rewound_at: float | None,
) -> tuple[str, str]:
    """(status, reason) of one Kafka partition from the times the sampler keeps for it between passes (ADR 0041).

    The same rules as `evaluate`, answered from "when did X last happen" instead of the window's points, so no
    partition history is read back: a rewind comes first (it is the news even if the partition caught up since), then
    the zero-lag guard, then STOP / STALL when the committed offset has not moved across a window at least half
    covered.
    """
    if lag == 0:
        return "OK", "no lag"
    since = now - window
    if rewound_at is not None and rewound_at >= since:
        return "REWIND", f"committed offset went back {int(now - rewound_at)} s ago"
    if zero_at is not None and zero_at >= since:
        return "OK", "lag was zero within the window"
    start = max(first_seen, since)
    if progressed_at <= start and now - start >= window / 2:
        if attached:
            return "STALL", f"{attached} attached but no progress for {int(now - progressed_at)} s"
        return "STOP", f"no progress and nobody consuming for {int(now - progressed_at)} s"
    return "OK", "consuming"
