"""Double submission: the same replay, compensation and resolve posted twice at the same moment (what a double-click
or a retrying client sends: the same form, so the same idempotency key) must run once — one operation, one audit
entry, one task on the Celery queue — and both requests must be answered (never a 500)."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import connections


@dataclass
class Counts:
    inputs: int = 0
    http_500: int = 0
    duplicated: int = 0


def queued_tasks() -> int:
    """Tasks waiting on this run's Celery queue (no worker runs in this drill): each enqueue adds one."""
    import redis

    return redis.Redis.from_url(settings.CELERY_BROKER_URL).llen(settings.CELERY_TASK_DEFAULT_QUEUE)


def at_once(world, user, url: str, body: dict, *, api: bool = False) -> list[int]:
    """Two clients of one user post the same body at the same instant; their statuses."""
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def post():
        client = world.client(user)
        try:
            barrier.wait(10)
            if api:
                response = client.post(url, body, content_type="application/json")
            else:
                response = client.post(url, body)
            statuses.append(response.status_code)
        except Exception:
            statuses.append(599)  # no answer
        finally:
            connections.close_all()

    threads = [threading.Thread(target=post) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return statuses


def targets(world, rounds: int) -> list[tuple[str, str, dict, bool]]:
    """(label, url, body, api) for each round: a fresh dead letter, a fresh failed saga to compensate and one to
    resolve, each through the page and through the API."""
    from django.utils import timezone

    from dlq.models import DeadLetter, DeadLetterSource
    from sagas.models import CompensationRoute
    from sagas.recording import record_events, validate_event
    from tests.sagas.helpers import ev

    CompensationRoute.objects.get_or_create(saga_type="drill", step="", broker="kafka", destination="drill.commands")
    source = DeadLetterSource.objects.create(broker="kafka", destination=f"drill-{uuid.uuid4().hex[:6]}.DLQ")
    out = []
    for n in range(rounds):
        now = timezone.now()
        dl = DeadLetter.objects.create(
            source=source,
            origin="drill.orders",
            message_id=f"0:{n}",
            body=b"{}",
            first_failure_at=now,
            last_failure_at=now,
            fingerprint="fp-double",
        )
        saga = f"double-{uuid.uuid4().hex[:8]}"
        steps = [ev(saga, "reserve", seq=1, saga_type="drill"), ev(saga, "charge", "execute", "failed", 2, "drill")]
        record_events([validate_event(e)[0] for e in steps])
        api = n % 2 == 1

        def form() -> dict:  # what one rendered form carries: a reason and its own idempotency key
            return {"reason": "double-click drill", "idempotency_key": str(uuid.uuid4())}

        prefix = "/api/v1" if api else ""
        ids = [dl.pk] if api else str(dl.pk)
        out.append(("replay", f"{prefix}/dead-letters/replay", {"ids": ids, **form()}, api))
        out.append(("compensate", f"{prefix}/sagas/{saga}/actions/compensate", form(), api))
        out.append(("resolve", f"{prefix}/sagas/{saga}/actions/resolve", {**form(), "note": "done by hand"}, api))
    return out


def drill(world, rounds: int) -> tuple[Counts, list[str]]:
    from console.models import AuditEntry, Operation

    counts, problems = Counts(), []
    for label, url, body, api in targets(world, rounds):
        tasks = queued_tasks()
        statuses = at_once(world, world.operator, url, body, api=api)
        counts.inputs += 2
        counts.http_500 += sum(s >= 500 for s in statuses)
        key = body["idempotency_key"]
        runs = Operation.objects.filter(idempotency_key=key).count()
        entries = AuditEntry.objects.filter(idempotency_key=key).count()
        enqueued = queued_tasks() - tasks
        extra = max(runs - 1, 0) + max(entries - 1, 0) + max(enqueued - 1, 0)
        counts.duplicated += extra
        if extra or runs != 1 or enqueued != 1 or any(s >= 500 for s in statuses):
            problems.append(
                f"{label} {url} api={api}: {statuses}, {runs} operations, {entries} audit, {enqueued} tasks"
            )
    return counts, problems
