"""The dead-letter-growth and saga-stuck rules, webhook retries, rule edit / delete on the Alerts page, and the
dead-letter counts the sampler keeps for the charts."""

import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.apps import apps
from django.utils import timezone

from console.models import AuditEntry
from dlq.models import DeadLetter, DeadLetterSource
from monitoring import alerts, webhooks
from monitoring.alerts import evaluate_all
from monitoring.models import AlertRule, ConsumerTarget, Incident
from monitoring.sampler import sample_all


def _dead_letters(source, n, start=0):
    now = timezone.now()
    DeadLetter.objects.bulk_create(
        DeadLetter(
            source=source,
            message_id=f"m{start + i}",
            body=b"\xff\x00not text",
            first_failure_at=now,
            last_failure_at=now,
            fingerprint="f" * 40,
        )
        for i in range(n)
    )


@pytest.fixture
def source(db):
    return DeadLetterSource.objects.create(broker="sqs", destination="orders-dlq")


def test_it_fires_the_dead_letter_growth_rule_and_resolves_it(world, source):
    rule = AlertRule.objects.create(name="dlq", kind="dlq_growth", threshold=2, minutes=5)
    _dead_letters(source, 2)
    now = timezone.now()
    assert evaluate_all(now) == []  # 2 is not more than 2
    _dead_letters(source, 1, start=2)
    sent = evaluate_all(now)
    assert [(state, i.subject) for state, i in sent] == [("firing", "dead-letters")]
    assert "3 new dead letters" in Incident.objects.get(rule=rule).summary
    # Ten minutes on, none of them is "new in the last 5 minutes" any more.
    sent = evaluate_all(now + timedelta(minutes=10))
    assert [state for state, _ in sent] == ["resolved"]


def test_it_fires_the_saga_stuck_rule(world):
    assert apps.is_installed("sagas")  # the rule finds nothing without it; this test is about the rule with it
    from sagas.models import SagaInstance  # imported here: the sagas app is built concurrently

    now = timezone.now()
    old = now - timedelta(minutes=45)
    for saga_id, status, since in (("s1", "running", old), ("s2", "running", now), ("s3", "completed", old)):
        SagaInstance.objects.create(
            id=saga_id, saga_type="order", status=status, started_at=since, updated_at=since, state_since=since
        )
    AlertRule.objects.create(name="stuck", kind="saga_stuck", minutes=30)
    sent = evaluate_all(now)
    assert [(state, i.subject) for state, i in sent] == [("firing", "sagas")]
    assert sent[0][1].summary.startswith("1 saga(s) stuck")


class _Flaky(BaseHTTPRequestHandler):
    failures = 0
    calls = 0

    def do_POST(self):
        type(self).calls += 1
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(503 if type(self).calls <= type(self).failures else 204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def flaky():
    server = HTTPServer(("127.0.0.1", 0), _Flaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Flaky.calls = 0
    yield f"http://127.0.0.1:{server.server_port}/hook", _Flaky
    server.shutdown()
    server.server_close()


def test_it_retries_a_failing_webhook_with_celery_and_gives_up_after_a_bound(flaky):
    # apply() runs the task here; each self.retry() runs it again at once (countdowns are not waited out eagerly).
    url, handler = flaky
    handler.failures = 2
    webhooks.deliver.apply(args=(url, {"state": "firing"}))
    assert handler.calls == 3
    handler.calls, handler.failures = 0, 100
    webhooks.deliver.apply(args=(url, {"state": "firing"}))
    assert handler.calls == webhooks.ATTEMPTS


def test_it_delivers_a_rules_webhook_only_after_the_incident_commits(db, flaky, django_capture_on_commit_callbacks):
    url, handler = flaky
    rule = AlertRule.objects.create(name="stuck", kind="saga_stuck", minutes=30, webhook_url=url)
    incident = Incident.objects.create(rule=rule, subject="sagas", summary="1 saga(s) stuck")
    app = webhooks.deliver.app
    app.conf.task_always_eager = True  # the task runs here when enqueued, against the real endpoint
    try:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            alerts.notify(rule, incident, "firing")
        assert handler.calls == 0 and len(callbacks) == 1  # nothing leaves before the commit
        callbacks[0]()
    finally:
        app.conf.task_always_eager = False
    assert handler.calls == 1


def test_it_lets_an_admin_edit_and_delete_a_rule_on_the_alerts_page_audited(world):
    rule = AlertRule.objects.create(name="lag", kind="consumer_status", minutes=5)
    page = world.client(world.admin).get("/consumers/alerts/")
    assert f'action="/consumers/alerts/{rule.pk}/edit"'.encode() in page.content
    assert b"/edit" not in world.client(world.operator).get("/consumers/alerts/").content
    form = {"name": "lag 10", "kind": "consumer_status", "threshold": "0", "minutes": "10", "enabled": "on"}
    denied = world.client(world.operator).post(f"/consumers/alerts/{rule.pk}/edit", {**form, "reason": "x"})
    assert denied.status_code == 403
    saved = world.client(world.admin).post(
        f"/consumers/alerts/{rule.pk}/edit", {**form, "reason": "quieter", "idempotency_key": "e1"}
    )
    assert saved.status_code == 302
    rule.refresh_from_db()
    assert (rule.name, rule.minutes) == ("lag 10", 10)
    deleted = world.client(world.admin).post(
        f"/consumers/alerts/{rule.pk}/delete", {"reason": "obsolete", "idempotency_key": "d1"}
    )
    assert deleted.status_code == 302 and not AlertRule.objects.filter(pk=rule.pk).exists()
    audit = AuditEntry.objects.filter(target_type="alert_rule").order_by("id")
    assert list(audit.values_list("action", "reason", "actor__username")) == [
        ("alert_rule.update", "quieter", "admin"),
        ("alert_rule.delete", "obsolete", "admin"),
    ]


def test_it_samples_dead_letter_counts_per_source_for_the_charts(world, source, console_brokers):
    _dead_letters(source, 4)
    DeadLetter.objects.filter(message_id="m0").update(status="replayed")
    sample_all()
    target = ConsumerTarget.objects.get(broker="dlq", name="sqs:default/orders-dlq")
    assert (target.lag, target.details["total"], target.status) == (3, 4, "OK")
    history = world.client(world.viewer).get("/api/v1/consumers/dlq/sqs:default/orders-dlq/history?range=24h").json()
    assert history["lag"][-1] == 3 and history["depth"][-1] == 4
    assert [s["label"] for s in history["series"]] == ["dead letters new", "dead letters kept"]
    outbox = world.client(world.viewer).get("/api/v1/consumers/outbox/outbox/history?range=7d").json()
    assert outbox["series"][0]["label"] == "outbox backlog"


def test_it_pages_someone_before_a_broker_dlq_drops_what_is_not_ingested(world, source):
    # The retention check stores its warning on the source (dlq.retention); the rule turns it into an incident per
    # source, and resolves it once the warning is gone (ingested, or the retention raised).
    rule = AlertRule.objects.create(name="retention", kind="dlq_retention", minutes=0)
    assert evaluate_all(timezone.now()) == []
    warning = "sqs:orders-dlq: the oldest message not yet ingested is 3 days, 2:00:00 old; lost in about 22:00:00"
    DeadLetterSource.objects.filter(pk=source.pk).update(retention_warning=warning)

    sent = evaluate_all(timezone.now())
    assert [(state, i.subject) for state, i in sent] == [("firing", "dlq-retention:sqs:default/orders-dlq")]
    assert Incident.objects.get(rule=rule).summary == warning
    assert evaluate_all(timezone.now()) == []  # one notification per incident

    DeadLetterSource.objects.filter(pk=source.pk).update(retention_warning="")
    assert [state for state, _ in evaluate_all(timezone.now())] == ["resolved"]
