"""The pure part of judging a Kafka group's partitions: the layout of one partition's state entry, each partition's
status, and the summary that lets an unchanged group be judged without walking its partitions (ADR 0042). No I/O:
the sampler (which observes and stores) and the read queries both import it, and it imports neither.
"""

import hashlib
import marshal

from monitoring.models import RANK
from monitoring.status import evaluate_partition

# One PartitionState entry per partition, a list laid out as follows (compact: a big cluster has 50k of them).
F_COMMITTED, F_END, F_STORED, F_PRODUCED, F_PROGRESSED, F_ZERO, F_REWOUND, F_FIRST = range(8)


def partition_status(entry: list, members: int | None, now: float, window: float) -> tuple[str, str]:
    lag = max(0, entry[F_END] - (entry[F_COMMITTED] or 0))
    return evaluate_partition(
        lag, members, now, window, entry[F_FIRST], entry[F_PROGRESSED], entry[F_ZERO], entry[F_REWOUND]
    )


def fingerprint(partitions: list[tuple[str, int, int | None, int]]) -> str:
    """A digest of one group's (topic, partition, committed, end) list as observed, stable across processes (the
    next pass may run in another worker). marshal format 0 has no interning or back-references, so equal lists give
    equal bytes whatever objects they share, and it is ~8x faster than repr() on 1,000 tuples."""
    return hashlib.blake2b(marshal.dumps(partitions, 0), digest_size=16).hexdigest()


def summarize(state: dict, born: float | None = None) -> dict:
    """What a pass that sees exactly the same offsets needs to judge the group without its partitions (ADR 0042):

    - `stored`: the oldest time a partition row was stored (a heartbeat is due when it is that old);
    - `produced`: the oldest estimated write time among lagging partitions (the group's worst lag in seconds);
    - `zero`: some partition has no lag (the worst lag in seconds is at least 0);
    - `unknown`: some lagging partition has no estimate yet (the next pass may find one: walk the partitions);
    - `reps`: one partition per distinct (lagging?, first seen, progressed, zero-lag, rewound) in partition order.
      A partition's status depends on nothing else, so judging these alone gives the same worst status and reason;
    - `born`: the pass that first saw the group, while its state has been carried continuously since (see
      _produce_times).
    """
    stored = produced = None
    zero = unknown = False
    reps: dict[tuple, list] = {}
    for key, e in state.items():
        lag = max(0, e[F_END] - (e[F_COMMITTED] or 0))
        stored = e[F_STORED] if stored is None else min(stored, e[F_STORED])
        if lag == 0:
            zero = True
        elif e[F_PRODUCED] is None:
            unknown = True
        else:
            produced = e[F_PRODUCED] if produced is None else min(produced, e[F_PRODUCED])
        ident = (lag > 0, e[F_FIRST], e[F_PROGRESSED], e[F_ZERO], e[F_REWOUND])
        if ident not in reps:
            topic, partition = key.rsplit("/", 1)
            reps[ident] = [topic, int(partition), lag, e[F_FIRST], e[F_PROGRESSED], e[F_ZERO], e[F_REWOUND]]
    return {
        "stored": stored,
        "produced": produced,
        "zero": zero,
        "unknown": unknown,
        "reps": list(reps.values()),
        "born": born,
    }


def judge_unchanged(summary: dict, members: int | None, ts: float, window: float) -> tuple[float | None, tuple]:
    """(worst lag seconds, worst partition (status, reason)) of an unchanged group, as _track_partitions would
    find them: statuses still move with time (STOP once the window passes), offsets do not."""
    seconds = [0.0] if summary["zero"] else []
    if summary["produced"] is not None:
        seconds.append(max(0.0, ts - summary["produced"]))
    worst_status = ("OK", "")
    for topic, partition, lag, first, progressed, zero, rewound in summary["reps"]:
        status = evaluate_partition(lag, members, ts, window, first, progressed, zero, rewound)
        if RANK[status[0]] > RANK[worst_status[0]]:
            worst_status = (status[0], f"{topic}[{partition}]: {status[1]}")
    return (max(seconds) if seconds else None), worst_status
