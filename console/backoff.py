"""The one backoff every retry in Switchyard uses: exponential, capped, with one of two jitters (the names are those of
the AWS Architecture Blog's "Exponential Backoff And Jitter").

- "full": a random delay in [0, ceiling). Many clients that failed together (rows of one outage, consumers of one
  queue) spread out instead of retrying in step; some retry almost at once, which is fine when there are many.
- "equal": a random delay in [ceiling / 2, ceiling). One thing that keeps failing (a broker connection, one step)
  waits at least half the curve, so it never hammers, and still never retries in step with a twin.
"""

from __future__ import annotations

import random

MAX_DOUBLINGS = 30  # 2**30 times the base is past any cap; larger exponents only risk overflow


def backoff(attempt: int, base: float, cap: float = float("inf"), jitter: str = "full") -> float:
    """Seconds (or whatever unit `base` and `cap` share) to wait before attempt `attempt + 1`, after `attempt`
    failures (1 for the first): base × 2^(attempt − 1), at most `cap`, jittered as above."""
    ceiling = min(cap, base * 2 ** min(max(attempt, 1) - 1, MAX_DOUBLINGS))
    if jitter == "full":
        return random.uniform(0, ceiling)
    if jitter == "equal":
        return random.uniform(ceiling / 2, ceiling)
    raise ValueError(f"unknown jitter {jitter!r}: 'full' or 'equal'")
