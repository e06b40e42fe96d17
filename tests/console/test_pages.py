import json

from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from console.actions import record_audit
from console.consumers import OperationsConsumer
from console.live import broadcast
from console.models import ApiToken, Operation


def test_it_checks_database_redis_and_every_broker_in_healthz(client, db):
    response = client.get("/healthz")
    checks = response.json()["checks"]
    assert response.status_code == 200, checks
    assert checks["database"]["ok"] and checks["redis"]["ok"]
    # `make test` configures all four brokers on this machine; each must really answer.
    for name in ("kafka:default", "sqs:default", "rabbitmq:default", "nats:default"):
        assert checks[name]["ok"] is True, (name, checks[name])
        assert checks[name]["latency_ms"] > 0


def test_it_says_not_configured_instead_of_failing(client, db, settings):
    from console import brokers

    settings.BROKERS = {k: v for k, v in settings.BROKERS.items() if k != "nats"}
    brokers.reset()
    try:
        body = client.get("/healthz").json()
        assert body["checks"]["nats"] == {"ok": None, "status": "not configured"}
        assert body["status"] == "ok"
    finally:
        brokers.reset()


def test_it_shows_each_broker_on_the_brokers_page(world):
    html = world.client(world.viewer).get("/brokers/").content.decode()
    for name in ("kafka", "sqs", "rabbitmq", "nats"):
        row = html.split(f'data-testid="broker-{name}:default"')[1].split("</tr>")[0]
        assert "reachable" in row and " ms" in row, row
    api = world.client(world.viewer).get("/api/v1/brokers").json()["brokers"]
    assert {b["connection"]: b["reachable"] for b in api} == {
        "kafka:default": True,
        "sqs:default": True,
        "rabbitmq:default": True,
        "nats:default": True,
    }


def test_it_exports_prometheus_metrics(world):
    Operation.objects.create(kind="noop", requested_by=world.operator, idempotency_key="m1", status="failed")
    token = world.token(world.viewer)
    response = world.client(None).get("/metrics", headers={"Authorization": f"Bearer {token}"})
    text = response.content.decode()
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    assert 'switchyard_operations{kind="noop",status="failed"} 1.0' in text
    assert "process_resident_memory_bytes" in text


def test_it_filters_and_exports_the_audit_log(world):
    for i in range(3):
        record_audit(world.operator, "operation.start", "operation", f"op-{i}", reason=f"because {i}")
    record_audit(world.admin, "token.create", "api_token", "7", reason="ci")
    client = world.client(world.viewer)
    page = client.get("/audit/?actor=admin").content.decode()
    assert "token.create" in page and "operation.start" not in page
    export = client.get("/audit/export.jsonl?action=operation.")
    lines = [json.loads(line) for line in b"".join(export.streaming_content).decode().splitlines()]
    assert [e["target_id"] for e in lines] == ["op-0", "op-1", "op-2"]
    assert lines[0]["actor"] == "operator" and lines[0]["reason"] == "because 0"
    api = client.get("/api/v1/audit?target_type=api_token").json()["entries"]
    assert [e["action"] for e in api] == ["token.create"]
    assert client.get("/api/v1/audit?since=yesterday").status_code == 400


def test_it_pages_the_audit_log_by_keyset(world):
    for i in range(60):
        record_audit(world.operator, "x.y", "thing", str(i))
    client = world.client(world.viewer)
    first = client.get("/audit/")
    assert first.status_code == 200
    next_url = first.context["next_url"]
    assert next_url and "before=" in next_url
    second = client.get("/audit/" + next_url)
    assert len(second.context["entries"]) == 10


def test_it_creates_shows_once_and_revokes_a_token(world):
    client = world.client(world.viewer)
    client.post("/tokens/create", {"name": "orders"})
    page = client.get("/tokens/").content.decode()
    shown = page.split('data-testid="new-token">')[1].split("<")[0]
    assert shown.startswith("sy_")
    assert shown not in client.get("/tokens/").content.decode()  # shown once
    row = ApiToken.objects.get(name="orders")
    assert row.token_hash == ApiToken.hash(shown) and row.user == world.viewer
    assert world.client(None).get("/api/v1/me", headers={"Authorization": f"Bearer {shown}"}).status_code == 200
    client.post(f"/tokens/{row.pk}/revoke")
    assert world.client(None).get("/api/v1/me", headers={"Authorization": f"Bearer {shown}"}).status_code == 401


def test_it_lets_only_an_admin_revoke_another_persons_token(world):
    world.token(world.operator)
    row = ApiToken.objects.get(user=world.operator)
    assert world.client(world.viewer).post(f"/tokens/{row.pk}/revoke").status_code == 403
    assert world.client(world.admin).post(f"/tokens/{row.pk}/revoke").status_code == 302
    row.refresh_from_db()
    assert row.revoked_at is not None


def test_it_closes_an_anonymous_websocket(db):
    async def connect():
        communicator = WebsocketCommunicator(OperationsConsumer.as_asgi(), "/ws/operations/")
        communicator.scope["user"] = AnonymousUser()
        connected, code = await communicator.connect()
        # Let the application finish (it waits for the disconnect) rather than leave asyncio.run's shutdown to
        # cancel it mid-call: that cancellation could hang the whole run.
        await communicator.disconnect()
        return connected, code

    assert async_to_sync(connect)() == (False, 4403)


def test_it_pushes_operation_progress_through_redis_to_the_socket(transactional_db, world):
    """broadcast() (as a worker calls it) → channels-redis → the stream's consumer → an HTML fragment."""
    op = Operation.objects.create(
        kind="noop", requested_by=world.operator, idempotency_key="ws1", progress_done=3, progress_total=4
    )

    async def round_trip():
        communicator = WebsocketCommunicator(OperationsConsumer.as_asgi(), "/ws/operations/")
        communicator.scope["user"] = world.viewer
        connected, _ = await communicator.connect()
        assert connected
        from asgiref.sync import sync_to_async

        await sync_to_async(broadcast)("operations", {"type": "operation", "id": str(op.pk), "status": "running"})
        html = await communicator.receive_from(timeout=5)
        await communicator.disconnect()
        return html

    html = async_to_sync(round_trip)()
    # The list's socket: the operation's row, to swap in by id (or put on top: data-live-match, no status filter).
    assert f'id="op-row-{op.pk}"' in html and 'hx-swap-oob="true"' in html and "75%" in html
    assert "data-live-match" in html and "-progress" not in html


def test_it_sends_an_operation_page_where_it_stands_when_its_socket_joins(transactional_db, world):
    # The page is rendered, then its socket connects: an operation that finished in between broadcast its end to
    # nobody. The socket of one operation's page gets the current state on joining instead.
    op = Operation.objects.create(
        kind="noop",
        requested_by=world.operator,
        idempotency_key="ws2",
        status="succeeded",
        progress_done=2,
        progress_total=2,
    )

    async def join(path):
        communicator = WebsocketCommunicator(OperationsConsumer.as_asgi(), path)
        communicator.scope["user"] = world.viewer
        connected, _ = await communicator.connect()
        assert connected
        html = None if await communicator.receive_nothing(timeout=1) else await communicator.receive_from(timeout=5)
        await communicator.disconnect()
        return html

    html = async_to_sync(join)(f"/ws/operations/?operation={op.pk}")
    assert f'id="op-{op.pk}-progress"' in html and "succeeded" in html and "100%" in html
    assert async_to_sync(join)("/ws/operations/?operation=not-a-uuid") is None
