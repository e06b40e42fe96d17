"""Gauges for /metrics, read from the latest figures on each target (the sampler keeps them current)."""

from prometheus_client.core import GaugeMetricFamily

from monitoring.models import ConsumerTarget, Status


def consumer_families():
    labels = ["broker", "connection", "kind", "name"]
    lag = GaugeMetricFamily("switchyard_consumer_lag", "Messages behind (Kafka, NATS) or queue depth", labels=labels)
    seconds = GaugeMetricFamily("switchyard_consumer_lag_seconds", "Estimated lag in seconds", labels=labels)
    members = GaugeMetricFamily("switchyard_consumer_members", "Group members or queue consumers", labels=labels)
    status = GaugeMetricFamily(
        "switchyard_consumer_status", "1 for the target's current status", labels=[*labels, "status"]
    )
    in_flight = GaugeMetricFamily("switchyard_queue_in_flight", "Unacked / in-flight / ack-pending", labels=labels)
    for t in ConsumerTarget.objects.filter(gone=False).order_by("broker", "connection", "name"):
        key = [t.broker, t.connection, t.kind, t.name]
        if t.lag is not None:
            lag.add_metric(key, t.lag)
        if t.lag_seconds is not None:
            seconds.add_metric(key, t.lag_seconds)
        if t.members is not None:
            members.add_metric(key, t.members)
        for s in Status.values:
            status.add_metric([*key, s], 1 if t.status == s else 0)
        flight = t.details.get("in_flight") if isinstance(t.details, dict) else None
        if flight is None and isinstance(t.details, dict):
            flight = t.details.get("ack_pending")
        if flight is not None:
            in_flight.add_metric(key, flight)
    yield from (lag, seconds, members, status, in_flight)
