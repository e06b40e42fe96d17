"""Real brokers for the monitoring tests (the adapter fixtures of tests/brokers), helpers to make lag, and a real
HTTP receiver for alert webhooks."""

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from console import brokers
from tests.brokers.conftest import (  # noqa: F401 - fixtures re-exported for this package
    kafka_adapter,
    moto_endpoint,
    nats_adapter,
    new_destination,
    noida_bootstrap,
    noida_kafka_adapter,
    rabbitmq_adapter,
    service_logs,
    sqs_adapter,
    tansu_bootstrap,
    tansu_kafka_adapter,
)


@pytest.fixture
def console_brokers():
    """The console's own adapters (settings.BROKERS, from the environment tools.services sets up)."""
    brokers.reset()
    yield brokers.defaults()
    brokers.reset()


@pytest.fixture
def unique():
    return lambda prefix="sy": f"{prefix}-{uuid.uuid4().hex[:10]}"


class _Hook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        _Hook.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook(transactional_db):
    """(url, received): a local HTTP server that keeps every alert notification POSTed to it. Notifications leave
    on commit, as a Celery task: the test's transactions commit for real and the task runs in this process."""
    from monitoring import webhooks

    webhooks.deliver.app.conf.task_always_eager = True
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", _Hook.received
    webhooks.deliver.app.conf.task_always_eager = False
    server.shutdown()
    server.server_close()
