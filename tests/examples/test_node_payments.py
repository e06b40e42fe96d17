"""The Node.js example service (examples/node-payments): run with `node`, it reports its payment saga over HTTP, the
saga appears in the console as failed, an operator's "compensate" reaches the service over NATS as a command, and
the service's answer makes the saga compensated — the whole loop a service in another language takes part in."""

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from sagas.models import CompensationRoute, SagaInstance

# Marked browser only for its place in the run: it uses the session's live console (daphne and a Celery worker),
# which the browser tests share, and runs after the others as they do.
pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
SERVICE = ROOT / "examples" / "node-payments" / "payments.js"


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def _wait(probe, timeout: float, what: str, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"{what} not within {timeout} s; the service said:\n{log.read_text()[-3000:]}")


def test_it_runs_the_node_service_whose_saga_the_console_shows_and_compensates(
    transactional_db, world, live_console, tmp_path
):
    node = shutil.which("node")
    assert node, "node (v20) is needed for the example service"
    subject = f"payments.{uuid.uuid4().hex[:8]}.commands"
    stream = f"PAYMENTS_{uuid.uuid4().hex[:8].upper()}"
    CompensationRoute.objects.create(saga_type="node.payment", broker="nats", destination=subject)
    log = tmp_path / "service.log"
    env = {
        "PATH": os.environ["PATH"],
        "SWITCHYARD_URL": live_console.url,
        "SWITCHYARD_TOKEN": world.token(world.viewer),  # a service needs no operator rights to report (ADR 0013)
        "NATS_URL": os.environ.get("NATS_URL", "nats://127.0.0.1:4222"),
        "PAYMENTS_SUBJECT": subject,
        "PAYMENTS_STREAM": stream,
    }
    service = subprocess.Popen([node, str(SERVICE)], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        failed = _wait(lambda: next((e for e in _lines(log) if e["what"] == "saga failed"), None), 30, "the saga", log)
        saga_id = failed["saga_id"]
        operator = world.client(world.operator)
        listed = operator.get("/api/v1/sagas", {"saga_type": "node.payment", "status": "failed"}).json()["sagas"]
        assert [s["id"] for s in listed] == [saga_id]
        assert saga_id in operator.get("/sagas/?saga_type=node.payment").content.decode()  # the console's page
        saga = SagaInstance.objects.get(pk=saga_id)
        assert (saga.current_step, saga.correlation_id) == ("capture", failed["correlation_id"])

        answer = operator.post(
            f"/api/v1/sagas/{saga_id}/actions/compensate",
            {"reason": "card network down; release the authorization", "idempotency_key": f"comp-{saga_id}"},
            content_type="application/json",
        )
        assert answer.status_code in (200, 201, 202), answer.content
        _wait(lambda: any(e["what"] == "compensated" for e in _lines(log)), 30, "the command", log)
        _wait(lambda: SagaInstance.objects.get(pk=saga_id).status == "compensated", 30, "the compensated status", log)
    finally:
        service.terminate()
        service.wait(10)
        from console import brokers

        brokers.get("nats").delete_destination(stream)
