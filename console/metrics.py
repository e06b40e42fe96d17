"""Prometheus exposition: process metrics plus gauges read from the database at scrape time.

Gauges are computed per scrape by a custom collector (not kept in process memory), so every web process reports the
same truth. Later capabilities add their families with `register_family`.
"""

import time
from collections.abc import Callable, Iterable

import redis
from django.conf import settings
from django.db.models import Count
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

FamilySource = Callable[[], Iterable[GaugeMetricFamily]]
_sources: list[FamilySource] = []


def register_family(source: FamilySource) -> FamilySource:
    _sources.append(source)
    return source


@register_family
def operation_families():
    from console.models import Operation

    gauge = GaugeMetricFamily("switchyard_operations", "Operations by kind and status", labels=["kind", "status"])
    for row in Operation.objects.values("kind", "status").annotate(n=Count("id")).order_by():
        gauge.add_metric([row["kind"], row["status"]], row["n"])
    yield gauge


class _DatabaseCollector:
    def collect(self):
        for source in _sources:
            yield from source()


def render() -> tuple[bytes, str]:
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    registry.register(_DatabaseCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST


def redis_health() -> dict:
    started = time.perf_counter()
    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        client.ping()
        version = client.info("server").get("redis_version")
        client.close()
        return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 1), "version": version}
    except Exception as e:
        return {"ok": False, "error": str(e)}
