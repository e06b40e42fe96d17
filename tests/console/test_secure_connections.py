"""A connections file with secured connections, working and failing ones side by side, read as a deployment reads
it (`${VAR}` secrets, PEM files): the secure ones carry dead letters end to end, each failing one shows its own
reason on the brokers page, the API and /healthz while everything else keeps working, and no secret appears in any
answer, page or log line. The servers are real (tools/secure_services.py): tansu behind stunnel for Kafka TLS and
mutual TLS, nats-server with TLS users and operator-mode creds, a RabbitMQ node with amqps."""

import logging
import uuid

import pytest

from brokers.connections import load
from console import brokers
from dlq import discovery, ingest
from dlq.models import DeadLetter, DeadLetterSource
from monitoring.sampler import sample_all
from tests.brokers.conftest import (  # noqa: F401 - fixtures
    RABBITMQ_TLS_PASSWORD,
    certs,
    nats_operator,
    nats_tls,
    nats_users,
    rabbitmq_tls,
    service_logs,
    tansu_mtls,
    tansu_tls,
)
from tests.dlq.conftest import wait_until

WRONG_PASSWORD = "not-the-password-" + uuid.uuid4().hex[:8]


@pytest.fixture
def secured(settings, tmp_path, certs, tansu_tls, tansu_mtls, nats_tls, nats_operator, nats_users, rabbitmq_tls):  # noqa: F811
    users, _ = nats_users
    text = f"""
kafka:
  tls: {{bootstrap_servers: "{tansu_tls.url}", security_protocol: SSL, tls: {{ca_file: "{certs.ca}"}}}}
  mtls:
    bootstrap_servers: "{tansu_mtls.url}"
    security_protocol: SSL
    tls: {{ca_file: "{certs.ca}", cert_file: "{certs.client_cert}", key_file: "{certs.client_key_encrypted}",
          key_password: "${{SY_KEY_PASSWORD}}"}}
  untrusted: {{bootstrap_servers: "{tansu_tls.url}", security_protocol: SSL, tls: {{ca_file: "{certs.other_ca}"}}}}
  nohost: {{bootstrap_servers: "no-such-host.invalid:9093"}}
nats:
  users: {{servers: ["{nats_tls.url}"], user: "{users.password_user}", password: "${{SY_NATS_PASSWORD}}",
          tls: {{ca_file: "{certs.ca}"}}, jetstream_domain: sy-hub}}
  wrong-password: {{servers: ["{nats_tls.url}"], user: "{users.password_user}", password: "${{SY_WRONG}}",
                   tls: {{ca_file: "{certs.ca}"}}}}
  creds: {{servers: ["{nats_operator.url}"], creds_file: "{users.creds_file}", tls: {{ca_file: "{certs.ca}"}}}}
rabbitmq:
  amqps: {{url: "${{SY_RABBIT_URL}}", tls: {{ca_file: "{certs.ca}"}}}}
"""
    path = tmp_path / "connections.yaml"
    path.write_text(text)
    from tools.secure_services import KEY_PASSWORD

    env = {
        "SY_KEY_PASSWORD": KEY_PASSWORD,
        "SY_NATS_PASSWORD": users.password,
        "SY_WRONG": WRONG_PASSWORD,
        "SY_RABBIT_URL": rabbitmq_tls.url,
    }
    specs = load(path, env)
    settings.BROKERS = {kind: {**settings.BROKERS.get(kind, {}), **specs.get(kind, {})} for kind in brokers.KINDS}
    brokers.reset()
    yield [users.password, WRONG_PASSWORD, RABBITMQ_TLS_PASSWORD, KEY_PASSWORD]
    ingest.close_all()
    brokers.reset()


def test_it_reports_each_connection_on_its_own_and_shows_no_secret(world, secured, caplog):
    caplog.set_level(logging.DEBUG)
    viewer = world.client(world.viewer)
    api = viewer.get("/api/v1/brokers")
    rows = {r["connection"]: r for r in api.json()["brokers"]}
    for key in (
        "kafka:tls",
        "kafka:mtls",
        "nats:users",
        "nats:creds",
        "rabbitmq:amqps",
        "kafka:default",
        "sqs:default",
    ):
        assert rows[key]["reachable"] is True, rows[key]
    assert rows["kafka:untrusted"]["reason"] == "certificate not trusted", rows["kafka:untrusted"]
    assert rows["kafka:nohost"]["reason"] == "host unknown", rows["kafka:nohost"]
    assert rows["nats:wrong-password"]["reason"] == "authentication refused", rows["nats:wrong-password"]
    assert rows["kafka:mtls"]["auth"] == "mutual TLS" and rows["nats:creds"]["auth"] == "creds file"
    assert rows["rabbitmq:amqps"]["tls"] is True

    page = viewer.get("/brokers/").content.decode()
    row = page.split('data-testid="broker-nats:wrong-password"')[1].split("</tr>")[0]
    assert "authentication refused" in row
    tested = viewer.get("/brokers/kafka:untrusted/test", HTTP_HX_REQUEST="true").content.decode()
    assert "certificate not trusted" in tested
    health = world.client(None).get("/healthz")
    assert health.json()["checks"]["kafka:nohost"]["reason"] == "host unknown"

    shown = [api.content.decode(), page, tested, health.content.decode()]
    shown.append(viewer.get("/api/v1/brokers/nats:wrong-password").content.decode())
    shown.append(viewer.get("/metrics").content.decode())
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    for secret in secured:
        for text in shown:
            assert secret not in text
        assert secret not in logged, secret


def test_it_takes_dead_letters_through_secured_connections_while_others_fail(world, secured):
    base = f"sy-{uuid.uuid4().hex[:10]}"
    tls = brokers.get("kafka", "tls")
    tls.ensure_destination(base)
    tls.ensure_destination(base + ".DLQ")
    rabbit = brokers.get("rabbitmq", "amqps")
    rabbit.ensure_destination(base + "-dlq")
    try:
        tls.publish(base + ".DLQ", b'{"over": "tls"}')
        rabbit.publish(base + "-dlq", b'{"over": "amqps"}')
        # Discovery goes on past the connections that fail (untrusted CA, unknown host, wrong password).
        discovery.discover()
        source = DeadLetterSource.objects.get(broker="kafka", connection="tls", destination=base + ".DLQ")
        letter = wait_until(lambda: ingest.run_once(source) and DeadLetter.objects.filter(source=source).first(), 60)
        assert letter.body_bytes() == b'{"over": "tls"}'
        amqps, _ = DeadLetterSource.objects.get_or_create(
            broker="rabbitmq", connection="amqps", destination=base + "-dlq"
        )
        got = wait_until(lambda: ingest.run_once(amqps) and DeadLetter.objects.filter(source=amqps).first(), 30)
        assert got.body_bytes() == b'{"over": "amqps"}'
        # The sampler files each failing connection's error under its own key and samples the rest.
        errors = sample_all()["errors"]
        assert {"kafka:untrusted", "kafka:nohost", "nats:wrong-password"} <= set(errors)
        assert not {"kafka:tls", "kafka:default", "nats:users"} & set(errors)
        assert all(secret not in str(errors) for secret in secured)
    finally:
        for adapter, name in ((tls, base), (tls, base + ".DLQ"), (rabbit, base + "-dlq")):
            adapter.delete_destination(name)
