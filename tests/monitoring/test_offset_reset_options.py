"""The finer offset reset: shift by N, chosen partitions, a date-time target and the preview's re-read / skipped
counts. Adapter checks run on noida and tansu; the API and page checks on the console's Kafka."""

import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from brokers.base import BrokerError
from console import brokers
from console.models import AuditEntry, Operation
from console.operations import execute
from monitoring.models import ConsumerTarget


def _group(adapter, new_destination, unique, partitions=1, sent=10, committed=None):
    """A topic with `sent` messages (published one at a time: tansu miscounts the high watermark after a batch) and
    a group committed at `committed` (capped at each partition's end) on every partition, or nowhere if None."""
    topic = new_destination(adapter, partitions=partitions)
    for i in range(sent):
        adapter.publish(topic, f"m{i}".encode(), key=f"k{i}")
    ends = adapter.end_offsets([(topic, p) for p in range(partitions)])
    group = unique("grp")
    if committed is not None:
        adapter.commit_offsets(group, {k: min(committed, end) for k, end in ends.items()})
    return topic, group, ends


def _committed(adapter, group):
    return {o.partition: o.committed for o in adapter.group_offsets(group)}


def test_it_shifts_only_the_chosen_partitions_clamped_to_their_range(kafka_adapter, new_destination, unique):
    topic, group, ends = _group(kafka_adapter, new_destination, unique, partitions=3, sent=30, committed=4)
    before = _committed(kafka_adapter, group)

    rewind = kafka_adapter.reset_offsets(group, topic, "shift", -3, dry_run=True, partitions=[0, 2])
    assert [(c.partition, c.old, c.new) for c in rewind] == [(p, before[p], max(before[p] - 3, 0)) for p in (0, 2)]
    assert _committed(kafka_adapter, group) == before  # the dry run moved nothing

    kafka_adapter.reset_offsets(group, topic, "shift", -100, dry_run=False, partitions=[0, 2])
    assert _committed(kafka_adapter, group) == {0: 0, 1: before[1], 2: 0}  # clamped at earliest, 1 untouched
    kafka_adapter.reset_offsets(group, topic, "shift", 1000, dry_run=False, partitions=[1])
    assert _committed(kafka_adapter, group) == {0: 0, 1: ends[(topic, 1)], 2: 0}  # clamped at the end
    kafka_adapter.reset_offsets(group, topic, "shift", 2, dry_run=False)  # no list: every partition
    assert _committed(kafka_adapter, group) == {
        0: min(2, ends[(topic, 0)]),
        1: ends[(topic, 1)],
        2: min(2, ends[(topic, 2)]),
    }


def test_it_refuses_a_shift_with_nothing_committed_and_a_partition_the_topic_lacks(
    kafka_adapter, new_destination, unique
):
    topic, group, _ = _group(kafka_adapter, new_destination, unique, partitions=2, sent=4)
    with pytest.raises(BrokerError, match="no committed offset"):
        kafka_adapter.reset_offsets(group, topic, "shift", -1, dry_run=False)
    with pytest.raises(ValueError, match="no partition 5"):
        kafka_adapter.reset_offsets(group, topic, "earliest", dry_run=False, partitions=[0, 5])
    nothing = {o.partition: o.committed for o in kafka_adapter.group_offsets(group, topics=[topic])}
    assert nothing == {0: None, 1: None}


def test_it_resets_to_the_first_message_at_or_after_a_time(kafka_adapter, new_destination, unique):
    topic, group, _ = _group(kafka_adapter, new_destination, unique, sent=3, committed=3)
    time.sleep(0.05)
    between = int(time.time() * 1000)
    time.sleep(0.05)
    for i in range(3):
        kafka_adapter.publish(topic, f"later {i}".encode())
    [change] = kafka_adapter.reset_offsets(group, topic, "timestamp", between, dry_run=False)
    assert (change.old, change.new) == (3, 3)
    kafka_adapter.reset_offsets(group, topic, "latest", dry_run=False)
    [change] = kafka_adapter.reset_offsets(group, topic, "timestamp", between, dry_run=False)
    assert (change.old, change.new) == (6, 3)
    assert _committed(kafka_adapter, group) == {0: 3}


def _api(client, group, body):
    return client.post(f"/api/v1/consumers/kafka/{group}/reset", body, content_type="application/json")


def test_it_previews_a_shift_with_messages_re_read_per_partition_then_applies_it_audited(
    world, console_brokers, new_destination, unique
):
    kafka = brokers.get("kafka")
    topic, group, ends = _group(kafka, new_destination, unique, partitions=2, sent=20, committed=5)
    before = _committed(kafka, group)
    client = world.client(world.operator)
    preview = _api(client, group, {"topic": topic, "to": "shift", "value": -2, "partitions": [1]})
    assert preview.status_code == 200
    expected = [{"topic": topic, "partition": 1, "old": before[1], "new": before[1] - 2, "delta": -2}]
    assert preview.json()["changes"] == expected
    assert (preview.json()["total_delta"], preview.json()["partitions"]) == (-2, [1])
    assert _committed(kafka, group) == before

    body = {"topic": topic, "to": "shift", "value": -2, "partitions": [1], "dry_run": False}
    body.update(reason="replay the last two", idempotency_key="shift-1")
    started = _api(client, group, body)
    assert started.status_code == 202
    op_id = started.json()["operation"]["id"]
    assert execute(op_id) == "succeeded"
    assert _committed(kafka, group) == {0: before[0], 1: before[1] - 2}
    op = Operation.objects.get(pk=op_id)
    assert (op.result["changes"], op.result["total_delta"]) == (expected, -2)
    entry = AuditEntry.objects.get(operation=op)
    assert (entry.actor, entry.reason, entry.parameters["partitions"]) == (world.operator, "replay the last two", [1])
    # Run again from the start, as a worker killed after the broker moved the offsets but before the operation
    # recorded it would be: the shift the dry run worked out is applied again, not shifted a second time.
    Operation.objects.filter(pk=op_id).update(status="queued", progress_done=0, finished_at=None, result={})
    assert execute(op_id) == "succeeded"
    assert _committed(kafka, group) == {0: before[0], 1: before[1] - 2}
    # The same key again is the same operation: no second shift.
    again = _api(client, group, body)
    assert again.status_code == 200 and again.json()["operation"]["id"] == op_id
    assert _committed(kafka, group) == {0: before[0], 1: before[1] - 2}


def test_it_takes_a_time_as_epoch_ms_or_iso_8601(world, console_brokers, new_destination, unique):
    kafka = brokers.get("kafka")
    topic, group, _ = _group(kafka, new_destination, unique, sent=3, committed=0)
    time.sleep(0.05)
    now = datetime.now(UTC)
    between = now.replace(microsecond=now.microsecond // 1000 * 1000)
    time.sleep(0.05)
    for i in range(2):
        kafka.publish(topic, f"later {i}".encode())
    ms = (between - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    in_paris = between.astimezone(timezone.get_fixed_timezone(60)).isoformat()
    client = world.client(world.operator)
    for value in (ms, str(ms), between.isoformat().replace("+00:00", "Z"), in_paris):
        answer = _api(client, group, {"topic": topic, "to": "timestamp", "value": value})
        assert answer.status_code == 200, answer.json()
        assert answer.json()["value"] == ms
        assert answer.json()["changes"] == [{"topic": topic, "partition": 0, "old": 0, "new": 3, "delta": 3}]


def test_it_answers_bad_reset_input_with_400_and_a_shift_with_nothing_committed_with_409(
    world, console_brokers, new_destination, unique
):
    kafka = brokers.get("kafka")
    topic, group, _ = _group(kafka, new_destination, unique, partitions=2, sent=4)
    client = world.client(world.operator)
    bad = {
        "partitions": {"to": "earliest", "partitions": ["one"]},
        "value": {"to": "timestamp", "value": "yesterday"},
    }
    for field, body in [*bad.items(), ("value", {"to": "timestamp", "value": 10**19})]:
        answer = _api(client, group, {"topic": topic, **body})
        assert answer.status_code == 400 and field in answer.json()["fields"], (field, answer.json())
    # Nothing committed: how many messages that skips depends on the consumers, so no count and none in the total.
    latest = _api(client, group, {"topic": topic, "to": "latest"}).json()
    assert [c["delta"] for c in latest["changes"]] == [None, None] and latest["total_delta"] == 0
    assert "value" in _api(client, group, {"topic": topic, "to": "shift"}).json()["fields"]
    missing = _api(client, group, {"topic": topic, "to": "earliest", "partitions": [7]})
    assert missing.status_code == 400 and "no partition 7" in missing.json()["fields"]["partitions"][0]
    start = {"topic": topic, "to": "shift", "value": -1, "dry_run": False, "reason": "r", "idempotency_key": "s"}
    refused = _api(client, group, start)
    assert refused.status_code == 409 and "no committed offset" in refused.json()["error"]
    assert not Operation.objects.filter(kind="kafka_offset_reset").exists()


def _target(group, topic):
    return ConsumerTarget.objects.create(
        broker="kafka",
        connection="default",
        kind="group",
        name=group,
        status="OK",
        status_since=timezone.now(),
        details={"topics": [topic]},
    )


def test_it_resets_to_a_date_time_on_the_page_showing_the_messages_skipped(
    world, console_brokers, new_destination, unique
):
    kafka = brokers.get("kafka")
    topic, group, _ = _group(kafka, new_destination, unique, sent=4, committed=1)
    # The page's date-time input has whole seconds: the next whole second is after the first four messages.
    at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    time.sleep(max(0.0, (at - datetime.now(UTC)).total_seconds()) + 0.05)
    kafka.publish(topic, b"after")
    _target(group, topic)
    client = world.client(world.operator)
    page = client.get(f"/consumers/kafka/{group}/")
    assert b'type="datetime-local" name="at"' in page.content and b'name="partitions"' in page.content
    form = {"topic": topic, "to": "datetime", "at": at.strftime("%Y-%m-%dT%H:%M:%S"), "partitions": "0"}
    preview = client.post(f"/consumers/kafka/{group}/reset", {**form, "reason": "skip", "idempotency_key": "p1"})
    assert preview.status_code == 200
    assert b'data-testid="delta-0">+3 (skipped)' in preview.content
    assert b'data-testid="delta-total">+3 skipped' in preview.content
    assert f"({at:%Y-%m-%d %H:%M:%S} UTC)".encode() in preview.content
    assert _committed(kafka, group) == {0: 1}

    # Confirm with what the preview's form carries: the time is now epoch ms, the partitions and the key unchanged.
    confirm = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', preview.content.decode()))
    ms = (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    assert confirm["to"] == "timestamp" and confirm["value"] == str(ms) and confirm["partitions"] == "0"
    started = client.post(f"/consumers/kafka/{group}/reset", {**confirm, "reason": "skip"})
    assert started.status_code == 302
    op = Operation.objects.get(idempotency_key="p1")
    assert execute(op.pk) == "succeeded"
    assert _committed(kafka, group) == {0: 4}


def test_it_keeps_what_was_typed_when_the_page_refuses_a_reset(world, console_brokers, new_destination, unique):
    kafka = brokers.get("kafka")
    topic, group, _ = _group(kafka, new_destination, unique, partitions=2, sent=4, committed=1)
    _target(group, topic)
    before = _committed(kafka, group)
    client = world.client(world.operator)
    typed = {"topic": topic, "to": "shift", "value": "-2", "partitions": "0, x", "reason": "replay <b>them</b>"}
    refused = client.post(f"/consumers/kafka/{group}/reset", {**typed, "idempotency_key": "k1"})
    assert refused.status_code == 400
    assert b'data-testid="partitions-error"' in refused.content
    assert b'value="0, x"' in refused.content and b'value="-2"' in refused.content
    assert b'<option value="shift" selected>' in refused.content and b'value="k1"' in refused.content
    assert b'value="replay &lt;b&gt;them&lt;/b&gt;"' in refused.content and b"<b>them" not in refused.content

    no_reason = client.post(
        f"/consumers/kafka/{group}/reset", {**typed, "partitions": "1", "reason": " ", "confirm": "1"}
    )
    assert no_reason.status_code == 400 and b"a reason is required" in no_reason.content
    assert _committed(kafka, group) == before
    assert not Operation.objects.filter(kind="kafka_offset_reset").exists()
