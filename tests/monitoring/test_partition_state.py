"""Per-partition status (a rewind on one partition is not hidden by progress on others) and the partition rows the
sampler keeps: only when offsets change, plus the row that closes the previous figures (ADR 0041)."""

from datetime import timedelta

from django.utils import timezone

from brokers.base import OutgoingMessage
from console import brokers
from monitoring.models import ConsumerTarget, Sample
from monitoring.sampler import sample_all


def _two_partitions(kafka, new_destination):
    topic = new_destination(kafka, partitions=2)
    kafka.publish_batch([OutgoingMessage(topic, f"m{i}".encode(), key=f"k{i}") for i in range(80)])
    ends = kafka.end_offsets([(topic, 0), (topic, 1)])
    assert min(ends.values()) >= 10, ends  # both partitions got messages
    return topic, ends


def test_it_shows_a_rewind_on_one_partition_while_the_other_progresses(
    world, settings, console_brokers, new_destination, unique
):
    kafka = brokers.get("kafka")
    topic, ends = _two_partitions(kafka, new_destination)
    group = unique("grp")
    kafka.commit_offsets(group, {(topic, 0): 5, (topic, 1): 5})
    now = timezone.now()
    sample_all(now)
    # Partition 1 goes back by 3 while partition 0 moves on by 6: the group's summed offset still grows.
    kafka.commit_offsets(group, {(topic, 0): 11, (topic, 1): 2})
    sample_all(now + timedelta(seconds=15))
    target = ConsumerTarget.objects.get(broker="kafka", name=group)
    assert target.status == "REWIND", target.reason
    assert f"{topic}[1]" in target.reason
    body = world.client(world.viewer).get(f"/api/v1/consumers/kafka/{group}").json()
    assert [(p["partition"], p["committed"], p["status"]) for p in body["partitions"]] == [
        (0, 11, "OK"),
        (1, 2, "REWIND"),
    ]
    # The rewind stays news for one window, then the group is judged on its progress again.
    kafka.commit_offsets(group, {(topic, 0): 12, (topic, 1): 3})
    window = settings.MONITORING_STATUS_WINDOW_SECONDS
    sample_all(now + timedelta(seconds=15 + window + 1))
    target.refresh_from_db()
    assert target.status == "OK", target.reason


def test_it_turns_one_stuck_partition_stall_while_the_other_progresses(
    world, settings, console_brokers, new_destination, unique
):
    settings.MONITORING_STATUS_WINDOW_SECONDS = 20
    kafka = brokers.get("kafka")
    topic, ends = _two_partitions(kafka, new_destination)
    group = unique("grp")
    now = timezone.now()
    for i, when in enumerate((0, 6, 12)):
        # Partition 0 advances every pass; partition 1 sits at 1 with lag and never moves.
        kafka.commit_offsets(group, {(topic, 0): 2 + i, (topic, 1): 1})
        sample_all(now + timedelta(seconds=when))
    target = ConsumerTarget.objects.get(broker="kafka", name=group)
    # Nobody is a member (offsets committed by the admin API), so the stuck partition is STOP.
    assert target.status == "STOP", target.reason
    assert f"{topic}[1]" in target.reason


def test_it_stores_partition_rows_only_when_offsets_change(world, console_brokers, new_destination, unique):
    kafka = brokers.get("kafka")
    topic, ends = _two_partitions(kafka, new_destination)
    group = unique("grp")
    kafka.commit_offsets(group, {(topic, 0): 1, (topic, 1): 1})
    now = timezone.now()
    for seconds in (0, 15, 30):
        sample_all(now + timedelta(seconds=seconds))
    target = ConsumerTarget.objects.get(broker="kafka", name=group)
    rows = Sample.objects.filter(target=target, partition__isnull=False)
    assert rows.count() == 2  # the first pass only: nothing moved since
    assert Sample.objects.filter(target=target, partition__isnull=True).count() == 3  # group totals every pass
    kafka.commit_offsets(group, {(topic, 0): 4, (topic, 1): 1})
    sample_all(now + timedelta(seconds=45))
    # Partition 0 changed: its old figures as last seen (30 s) close the flat stretch, then the new ones.
    p0 = list(rows.filter(partition=0).order_by("time").values_list("time", "committed"))
    assert [c for _, c in p0] == [1, 1, 4]
    expected = [now, now + timedelta(seconds=30), now + timedelta(seconds=45)]
    assert all(abs(t - e) < timedelta(milliseconds=1) for (t, _), e in zip(p0, expected, strict=True))
    assert rows.filter(partition=1).count() == 1
    # The lag in seconds of the unchanged lagging partition is still known (carried from the earlier estimate).
    parts = world.client(world.viewer).get(f"/api/v1/consumers/kafka/{group}").json()["partitions"]
    assert all(p["lag_seconds"] is not None and p["lag_seconds"] >= 45 for p in parts), parts
