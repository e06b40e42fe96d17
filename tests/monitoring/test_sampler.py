"""The sampler against real brokers: lag appears and clears, a stopped consumer turns STOP within the window, depth
matches what was sent, and the pages / API / metrics / dashboard show it."""

from datetime import timedelta

from django.utils import timezone

from brokers.base import OutgoingMessage
from console import brokers
from monitoring.models import ConsumerTarget, Sample
from monitoring.sampler import downsample, sample_all


def _publish(adapter, topic, n):
    for i in range(n):
        adapter.publish(topic, f"m{i}".encode())


def _poll_until(sub, n, tries=60):
    got = []
    for _ in range(tries):
        got += sub.poll(n - len(got), timeout=0.5)
        if len(got) >= n:
            return got
    raise AssertionError(f"only {len(got)} of {n} messages arrived")


def test_it_shows_lag_when_a_consumer_falls_behind_and_clears_it_when_it_catches_up(
    world, console_brokers, new_destination, unique
):
    kafka = brokers.get("kafka")
    topic = new_destination(kafka)
    group = unique("grp")
    _publish(kafka, topic, 10)
    with kafka.subscribe(topic, group) as sub:
        sub.ack(_poll_until(sub, 4)[:4])
        t0 = timezone.now()
        sample_all(t0)
        target = ConsumerTarget.objects.get(broker="kafka", name=group)
        assert (target.kind, target.lag) == ("group", 6)
        api = world.client(world.viewer).get(f"/api/v1/consumers/kafka/{group}").json()
        assert api["group"] == group and api["lag"] == 6
        assert [(p["topic"], p["partition"], p["committed"], p["end"], p["lag"]) for p in api["partitions"]] == [
            (topic, 0, 4, 10, 6)
        ]
        # Later, the lag has an age: interpolated from the first sample that saw it (ADR 0040).
        sample_all(t0 + timedelta(seconds=5))
        target.refresh_from_db()
        assert target.lag == 6 and target.lag_seconds >= 5
        rest = _poll_until(sub, 6)
        sub.ack(rest)
        sample_all(t0 + timedelta(seconds=10))
    target.refresh_from_db()
    assert (target.lag, target.lag_seconds, target.status) == (0, 0.0, "OK")
    listed = world.client(world.viewer).get("/api/v1/consumers").json()["consumers"]
    entry = next(e for e in listed if e["broker"] == "kafka" and e.get("group") == group)
    assert (entry["lag"], entry["lag_seconds"], entry["status"]) == (0, 0.0, "OK")


def test_it_turns_a_stopped_consumer_stop_within_the_window(world, settings, console_brokers, new_destination, unique):
    settings.MONITORING_STATUS_WINDOW_SECONDS = 20
    kafka = brokers.get("kafka")
    topic = new_destination(kafka)
    group = unique("grp")
    _publish(kafka, topic, 3)
    with kafka.subscribe(topic, group) as sub:
        sub.ack(_poll_until(sub, 3))
    # The consumer is gone; traffic goes on.
    t0 = timezone.now()
    _publish(kafka, topic, 2)
    sample_all(t0)
    target = ConsumerTarget.objects.get(broker="kafka", name=group)
    assert (target.lag, target.status) == (2, "OK")  # one sample is not a window
    _publish(kafka, topic, 2)
    sample_all(t0 + timedelta(seconds=6))
    _publish(kafka, topic, 2)
    sample_all(t0 + timedelta(seconds=12))
    target.refresh_from_db()
    assert target.lag == 6
    assert target.status == "STOP", target.reason
    assert target.members == 0


def test_it_reports_queue_depth_matching_what_was_sent(world, settings, console_brokers, new_destination, unique):
    sqs, rabbit, nats = brokers.get("sqs"), brokers.get("rabbitmq"), brokers.get("nats")
    queue = new_destination(sqs)
    sqs.publish_batch([OutgoingMessage(queue, f"m{i}".encode()) for i in range(7)])
    rqueue = new_destination(rabbit)
    settings.MONITORING_RABBITMQ_QUEUES = [rqueue]
    rabbit.publish_batch([OutgoingMessage(rqueue, f"m{i}".encode()) for i in range(5)])
    stream = new_destination(nats)
    nats.publish_batch([OutgoingMessage(stream, f"m{i}".encode()) for i in range(4)])
    nats.subscribe(stream, "reader").close()  # a durable consumer that has read nothing
    sample_all()
    got = {(t.broker, t.name): t for t in ConsumerTarget.objects.all()}
    assert got[("sqs", queue)].lag == 7
    assert got[("sqs", queue)].details["in_flight"] == 0
    assert got[("rabbitmq", rqueue)].lag == 5
    assert got[("rabbitmq", rqueue)].details["consumers"] == 0
    assert got[("nats", f"{stream}/reader")].lag == 4
    assert got[("nats", f"{stream}/reader")].details["pending"] == 4
    assert got[("celery", settings.CELERY_TASK_DEFAULT_QUEUE)].lag == 0


def test_it_lists_every_target_in_few_queries(world, console_brokers, new_destination, django_assert_max_num_queries):
    sqs = brokers.get("sqs")
    for _ in range(3):
        sqs.publish(new_destination(sqs), b"x")
    sample_all()
    sample_all()
    client = world.client(world.viewer)
    with django_assert_max_num_queries(8):
        page = client.get("/consumers/")
    assert page.status_code == 200
    assert page.content.count(b'data-testid="consumer-row"') == ConsumerTarget.objects.filter(gone=False).count()
    with django_assert_max_num_queries(6):
        assert client.get("/api/v1/consumers").status_code == 200


def _exposition() -> str:
    """What /metrics renders for this app's families (rendered alone, so another app's family cannot mask ours)."""
    from prometheus_client import CollectorRegistry, generate_latest

    from console import metrics
    from monitoring.metrics import consumer_families

    assert consumer_families in metrics._sources

    class Collector:
        def collect(self):
            yield from consumer_families()

    registry = CollectorRegistry()
    registry.register(Collector())
    return generate_latest(registry).decode()


def test_it_exports_gauges_and_a_dashboard_tile(world, console_brokers, new_destination):
    sqs = brokers.get("sqs")
    queue = new_destination(sqs)
    sqs.publish_batch([OutgoingMessage(queue, b"x")] * 3)
    sample_all()
    metrics = _exposition()
    assert f'switchyard_consumer_lag{{broker="sqs",connection="default",kind="queue",name="{queue}"}} 3.0' in metrics
    assert (
        f'switchyard_consumer_status{{broker="sqs",connection="default",kind="queue",name="{queue}",status="OK"}} 1.0'
        in metrics
    )
    dashboard = world.client(world.viewer).get("/").content.decode()
    assert 'data-testid="tile-consumers"' in dashboard and 'href="/consumers/?status=bad"' in dashboard


def test_it_marks_a_broker_that_does_not_answer_err(world, settings, console_brokers, new_destination):
    sqs = brokers.get("sqs")
    queue = new_destination(sqs)
    sample_all()
    dead = settings.BROKERS["sqs"]["default"].model_copy(update={"endpoint_url": "http://127.0.0.1:9"})
    settings.BROKERS = {**settings.BROKERS, "sqs": {"default": dead}}
    brokers.reset()
    result = sample_all()
    assert "sqs:default" in result["errors"]
    target = ConsumerTarget.objects.get(broker="sqs", name=queue)
    assert target.status == "ERR" and target.error


def test_it_downsamples_and_expires_old_samples(world, settings, console_brokers, new_destination):
    sqs = brokers.get("sqs")
    new_destination(sqs)
    now = timezone.now()
    for minutes in (8 * 24 * 60, 120, 119, 118, 1):
        sample_all(now - timedelta(minutes=minutes))
    result = downsample(now)
    assert result["expired"] > 0
    times = sorted(
        {t for t in Sample.objects.filter(partition__isnull=True).values_list("time", flat=True)}, reverse=True
    )
    assert now - timedelta(days=7) < min(times)
    # 120, 119 and 118 minutes ago share at most two 5-minute buckets: at most two of them survive.
    old = [t for t in times if t < now - timedelta(minutes=100)]
    assert 1 <= len(old) <= 2
