"""Dashboard tiles and Prometheus gauges for sagas: each is one indexed count over a small subset."""

from django.urls import reverse
from prometheus_client.core import GaugeMetricFamily

from console.dashboard import Tile
from sagas.models import ACTIVE, SagaInstance, Status
from sagas.recording import stuck_cutoff


def counts() -> dict[str, int]:
    sagas = SagaInstance.objects
    return {
        "failed": sagas.filter(status=Status.FAILED).count(),
        "compensation_failed": sagas.filter(status=Status.COMPENSATION_FAILED).count(),
        "stuck": sagas.filter(status__in=ACTIVE, state_since__lt=stuck_cutoff()).count(),
    }


def saga_tiles() -> list[Tile]:
    n, href = counts(), reverse("sagas")
    return [
        Tile("sagas-failed", "Sagas failed", str(n["failed"]), href + "?status=failed", bad=n["failed"] > 0),
        Tile(
            "sagas-compensation-failed",
            "Compensations failed",
            str(n["compensation_failed"]),
            href + "?status=compensation_failed",
            bad=n["compensation_failed"] > 0,
            detail="waiting for an operator" if n["compensation_failed"] else "",
        ),
        Tile(
            "sagas-stuck",
            "Sagas stuck",
            str(n["stuck"]),
            href + f"?stuck_minutes={_stuck_minutes()}",
            bad=n["stuck"] > 0,
        ),
    ]


def saga_families():
    gauge = GaugeMetricFamily("switchyard_sagas_attention", "Sagas that need attention", labels=["state"])
    for state, value in counts().items():
        gauge.add_metric([state], value)
    yield gauge


def _stuck_minutes() -> int:
    from django.conf import settings

    return max(1, settings.SAGA_STUCK_AFTER_SECONDS // 60)


def saga_trace(correlation: str, limit: int):
    from console.trace import TraceRow, TraceSection, stamp
    from sagas.models import SagaInstance

    sagas = SagaInstance.objects.filter(correlation_id=correlation).order_by("-started_at")[: limit + 1]
    rows = [
        TraceRow(
            [s.pk, s.saga_type, s.status, s.current_step or "—", stamp(s.started_at), stamp(s.updated_at)],
            s.get_absolute_url(),
            s.started_at,
        )
        for s in sagas
    ]
    return TraceSection("sagas", "Sagas", ["Saga", "Type", "Status", "Current step", "Started", "Updated"], rows)


def saga_charts(window) -> list:
    """Failed steps per bucket, executions and compensations apart (a failed compensation needs a person)."""
    from django.db import connection

    from console.dashboard import Chart, Series
    from sagas.models import SagaStepEvent

    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT date_bin(%s, recorded_at, %s), direction, count(*) FROM {SagaStepEvent._meta.db_table}
                WHERE status = 'failed' AND recorded_at >= %s GROUP BY 1, 2""",
            [window.step, window.origin, window.since],
        )
        rows = cursor.fetchall()
    by_direction: dict[str, dict] = {"execute": {}, "compensate": {}}
    for bucket, direction, n in rows:
        by_direction.setdefault(direction, {})[bucket] = n
    href = reverse("sagas")
    return [
        Chart(
            "saga-failures",
            "Saga failures",
            f"{href}?status=failed",
            "failed steps per bucket",
            [
                Series("step failures", window.fill(by_direction["execute"]), f"{href}?status=failed"),
                Series(
                    "compensation failures",
                    window.fill(by_direction["compensate"]),
                    f"{href}?status=compensation_failed",
                ),
            ],
            style="bars",
        )
    ]


def saga_changes(since) -> list:
    """Sagas that began to fail (or whose compensation failed) since `since` and still wait for an operator."""
    from console.dashboard import Change

    failing = SagaInstance.objects.filter(
        status__in=[Status.FAILED, Status.COMPENSATION_FAILED], state_since__gte=since
    )
    found = []
    for saga in failing.order_by("-state_since").only("id", "saga_type", "status", "current_step", "state_since")[:10]:
        what = "compensation failed" if saga.status == Status.COMPENSATION_FAILED else "failed"
        text = f"saga {saga.saga_type} {saga.pk[:12]} {what}" + (
            f" at {saga.current_step}" if saga.current_step else ""
        )
        found.append(Change(saga.state_since, "saga", text, reverse("saga", args=[saga.pk])))
    return found
