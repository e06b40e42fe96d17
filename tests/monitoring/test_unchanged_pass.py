"""A group whose offsets did not move since the last pass is judged from its state's summary, without loading or
walking its partitions (ADR 0042) — with the same answer the full walk gives; and partition rows written as COPY
text come back intact."""

from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from brokers.base import OutgoingMessage
from console import brokers
from monitoring.models import ConsumerTarget, PartitionState, Sample
from monitoring.partitions import fingerprint, judge_unchanged
from monitoring.sampler import (
    _copy_samples,
    _partition_row,
    _produce_times,
    _track_partitions,
    observe_kafka,
    store,
)


def _lagging_group(kafka, new_destination, unique):
    topic = new_destination(kafka, partitions=3)
    kafka.publish_batch([OutgoingMessage(topic, f"m{i}".encode(), key=f"k{i}") for i in range(90)])
    ends = kafka.end_offsets([(topic, p) for p in range(3)])
    group = unique("grp")
    # Partitions 0 and 1 lag, partition 2 is caught up: both halves of the lag-seconds rule are exercised.
    kafka.commit_offsets(group, {(topic, 0): 1, (topic, 1): 2, (topic, 2): ends[(topic, 2)]})
    return group


def _observe(kafka, group):
    return [o for o in observe_kafka(kafka) if o.name == group]


def test_it_judges_an_unchanged_group_from_its_summary_as_the_full_walk_would(
    world, settings, console_brokers, new_destination, unique
):
    settings.MONITORING_STATUS_WINDOW_SECONDS = 20
    kafka = brokers.get("kafka")
    group = _lagging_group(kafka, new_destination, unique)
    now = timezone.now()
    store(_observe(kafka, group), {}, now)
    store(_observe(kafka, group), {}, now + timedelta(seconds=5))  # finds the write-time estimates
    target = ConsumerTarget.objects.get(broker="kafka", name=group)
    state = PartitionState.objects.get(target=target)
    [o] = _observe(kafka, group)
    assert state.fingerprint == fingerprint(o.partitions)
    assert state.summary["unknown"] is False and state.summary["zero"] is True

    # 12 s on, past half the window with no progress: STOP, a time-driven change with offsets standing still.
    later = now + timedelta(seconds=12)
    rows = []
    walked = _track_partitions(o, target, state.partitions, state.seen_at, {}, later, rows)
    assert walked[1] is False and rows == []  # the walk would change nothing and store nothing
    judged = judge_unchanged(state.summary, o.members, later.timestamp(), 20)
    assert judged == (walked[2], walked[3])
    assert judged[1][0] == "STOP" and judged[0] >= 12

    with CaptureQueriesContext(connection) as queries:
        store([o], {}, later)
    assert not [q["sql"] for q in queries if '"monitoring_partitionstate"."partitions"' in q["sql"]]
    target.refresh_from_db()
    assert (target.status, target.lag_seconds) == ("STOP", judged[0])


def test_it_walks_the_partitions_again_once_an_offset_moves(world, console_brokers, new_destination, unique):
    kafka = brokers.get("kafka")
    group = _lagging_group(kafka, new_destination, unique)
    now = timezone.now()
    for seconds in (0, 5, 10):
        store(_observe(kafka, group), {}, now + timedelta(seconds=seconds))
    target = ConsumerTarget.objects.get(broker="kafka", name=group)
    before = PartitionState.objects.get(target=target).fingerprint
    [o] = _observe(kafka, group)
    topic = o.partitions[0][0]
    kafka.commit_offsets(group, {(topic, 0): 4})
    store(_observe(kafka, group), {}, now + timedelta(seconds=15))
    state = PartitionState.objects.get(target=target)
    assert state.fingerprint != before
    assert state.partitions[f"{topic}/0"][0] == 4
    # The moved partition got its closing row (as last seen at 10 s) and its new one.
    assert list(
        Sample.objects.filter(target=target, partition=0).order_by("time").values_list("committed", flat=True)
    ) == [1, 1, 4]
    target.refresh_from_db()
    assert target.lag == sum(max(0, end - (c or 0)) for _, _, c, end in _observe(kafka, group)[0].partitions)


def test_it_estimates_a_new_groups_write_times_without_a_query_as_the_query_would(
    world, console_brokers, new_destination, unique
):
    kafka = brokers.get("kafka")
    group = _lagging_group(kafka, new_destination, unique)
    now = timezone.now()
    store(_observe(kafka, group), {}, now)
    target = ConsumerTarget.objects.get(broker="kafka", name=group)
    state = PartitionState.objects.get(target=target)
    assert state.summary["born"] == now.timestamp()
    [o] = _observe(kafka, group)
    later = now + timedelta(seconds=5)
    targets = {("kafka", "default", group): target}
    shortcut = _produce_times([o], targets, {target.pk: state.partitions}, later, {target.pk: state.summary["born"]})
    queried = _produce_times([o], targets, {target.pk: state.partitions}, later)
    assert shortcut == queried and len(shortcut) == 2  # the two lagging partitions, from the first pass's rows
    assert set(shortcut.values()) == {now.timestamp()}
    store([o], {}, later)
    target.refresh_from_db()
    assert target.lag_seconds == 5.0


def test_it_writes_partition_rows_as_copy_text_that_reads_back_intact(world):
    target = ConsumerTarget.objects.create(broker="kafka", connection="default", kind="group", name="copy-text")
    when = timezone.now()
    odd = "we\\ird\ttopic\nname"
    _copy_samples(
        [
            _partition_row(when, target.pk, odd, 3, None, 7, None),
            _partition_row(when, target.pk, "plain", 0, 5, 9, 12.5),
        ]
    )
    rows = {
        r[0]: r[1:]
        for r in Sample.objects.filter(target=target).values_list(
            "topic", "partition", "committed", "end_offset", "lag", "lag_seconds", "depth", "downsampled", "time"
        )
    }
    assert rows[odd][:-1] == (3, None, 7, 7, None, None, False)
    assert rows["plain"][:-1] == (0, 5, 9, 4, 12.5, None, False)
    assert rows["plain"][-1] == when
