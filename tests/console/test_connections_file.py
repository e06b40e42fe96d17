"""The connections file (brokers/connections.py): parsing, secrets, and errors that name the file, connection and key.

These are tests of the file format alone; the connections at work against real brokers are in
tests/console/test_connections.py."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from brokers.connections import ConnectionsError, load, secret_values

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "connections.yaml"
    path.write_text(text)
    return path


def test_it_reads_named_connections_of_every_kind_with_their_security(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "creds").write_text("creds")
    path = write(
        tmp_path,
        f"""
kafka:
  prod-eu:
    bootstrap_servers: b1:9093,b2:9093
    security_protocol: sasl_ssl
    sasl: {{mechanism: scram-sha-512, username: switchyard, password: "${{KAFKA_EU_PASSWORD}}"}}
    tls: {{ca_file: {ca}}}
    properties: {{client.id: switchyard}}
  msk:
    bootstrap_servers: [b-1.msk:9098]
    security_protocol: SASL_SSL
    sasl: {{mechanism: AWS_MSK_IAM, region: eu-west-1, role_arn: "arn:aws:iam::123456789012:role/switchyard"}}
sqs:
  billing-us: {{region: us-east-1, role_arn: "arn:aws:iam::123456789012:role/switchyard"}}
  local: {{region: us-east-1, endpoint_url: "http://127.0.0.1:4566"}}
rabbitmq:
  orders: {{url: "amqps://switchyard:${{RMQ_PASSWORD}}@mq:5671/orders", tls: {{ca_file: {ca}}}}}
nats:
  core: {{servers: [nats://n1:4222, nats://n2:4222], creds_file: {tmp_path / "creds"}, jetstream_domain: hub}}
""",
    )
    specs = load(path, {"KAFKA_EU_PASSWORD": "s3cret-eu", "RMQ_PASSWORD": "rabbit-pw"})
    assert sorted(specs) == ["kafka", "nats", "rabbitmq", "sqs"]
    args, kwargs = specs["kafka"]["prod-eu"].adapter_args()
    assert args == ("b1:9093,b2:9093",)
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl"] == {"mechanism": "SCRAM-SHA-512", "username": "switchyard", "password": "s3cret-eu"}
    assert kwargs["tls"] == {"ca_file": str(ca)} and kwargs["properties"] == {"client.id": "switchyard"}
    assert specs["kafka"]["msk"].adapter_args()[1]["sasl"]["role_arn"].endswith("role/switchyard")
    assert specs["sqs"]["local"].adapter_args()[1]["endpoint_url"] == "http://127.0.0.1:4566"
    args, kwargs = specs["rabbitmq"]["orders"].adapter_args()
    assert args == ("amqps://switchyard:rabbit-pw@mq:5671/orders",)
    args, kwargs = specs["nats"]["core"].adapter_args()
    assert args == ("nats://n1:4222,nats://n2:4222",) and kwargs["jetstream_domain"] == "hub"
    # What a page may show: never the secrets, and the repr masks them too.
    described = str([spec.describe() for kind in specs.values() for spec in kind.values()])
    assert "s3cret-eu" not in described and "rabbit-pw" not in described
    assert "s3cret-eu" not in repr(specs) and "rabbit-pw" not in repr(specs)
    assert specs["rabbitmq"]["orders"].describe() == {
        "address": "mq:5671 vhost orders",
        "auth": "user switchyard",
        "tls": True,
    }
    assert {"s3cret-eu", "rabbit-pw"} <= secret_values(specs)


def test_it_reads_a_secret_from_a_file(tmp_path):
    secret = tmp_path / "password"
    secret.write_text("from-a-file\n")
    path = write(
        tmp_path,
        f"kafka:\n  a:\n    bootstrap_servers: k:9092\n    security_protocol: SASL_PLAINTEXT\n"
        f"    sasl: {{mechanism: PLAIN, username: u, password_file: {secret}}}\n",
    )
    assert load(path, {})["kafka"]["a"].adapter_args()[1]["sasl"]["password"] == "from-a-file"


@pytest.mark.parametrize(
    "text, message",
    [
        ("kafka:\n  prod-eu:\n    bootstrap_servers: k:9092\n    security_protocol: SASL_SSL\n", "kafka.prod-eu: "),
        (
            "kafka:\n  prod-eu:\n    bootstrap_servers: k:9092\n    security_protocol: SASL_SSL\n"
            "    sasl: {mechanism: SCRAM-SHA-999, username: u, password: p}\n",
            "kafka.prod-eu.sasl.mechanism: Input should be",
        ),
        (
            "kafka:\n  prod-eu:\n    bootstrap_servers: k:9092\n    security_protocol: SASL_SSL\n"
            "    sasl: {mechanism: SCRAM-SHA-512, username: u}\n",
            "kafka.prod-eu.sasl: SCRAM-SHA-512 needs password",
        ),
        (
            "kafka:\n  prod-eu:\n    bootstrap_servers: k:9092\n    sasl_password: x\n",
            "kafka.prod-eu.sasl_password: Extra",
        ),
        ("kafka:\n  prod-eu:\n    bootstrap_servers: nohostport\n", "kafka.prod-eu.bootstrap_servers: "),
        ("kafka:\n  prod-eu:\n    bootstrap_servers: k:9092\n    tls: {ca_file: /nope.pem}\n", "kafka.prod-eu.tls"),
        (
            "kafka:\n  prod-eu:\n    bootstrap_servers: k:9092\n    properties: {a: ${UNSET_VARIABLE_X}}\n",
            "UNSET_VARIABLE_X",
        ),
        ("kinesis:\n  a: {stream: x}\n", "'kinesis' is not a kind"),
        ("kafka:\n  'bad name!': {bootstrap_servers: k:9092}\n", "kafka.bad name!: a connection name"),
        ("rabbitmq:\n  q: {url: 'http://mq'}\n", "rabbitmq.q.url: must be an amqp"),
        ("nats:\n  n: {servers: nats://n:4222, token: t, user: u}\n", "nats.n: give one way to authenticate"),
        ("sqs:\n  s: {region: us-east-1, access_key_id: AKIA}\n", "sqs.s: access_key_id and secret_access_key"),
        ("kafka: [1, 2]\n", "kafka must map connection names"),
        ("kafka:\n  a: {bootstrap_servers: k:9092\n", "not valid YAML"),
    ],
)
def test_it_names_the_file_the_connection_and_the_key_of_a_mistake(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConnectionsError) as caught:
        load(path, {})
    assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value), str(caught.value)


def test_it_never_echoes_a_secret_in_an_error(tmp_path):
    path = write(
        tmp_path,
        "rabbitmq:\n  q: {url: 'amqps://u:Pa55-word@mq:5671/v', management_url: 'ftp://u:Pa55-word@mq'}\n",
    )
    with pytest.raises(ConnectionsError) as caught:
        load(path, {})
    assert "management_url" in str(caught.value) and "Pa55-word" not in str(caught.value)


def test_it_makes_the_default_connection_of_each_old_variable(tmp_path):
    legacy = {"kafka": {"bootstrap_servers": "k:9092"}, "nats": {"servers": "nats://n:4222"}, "rabbitmq": None}
    specs = load(None, {}, legacy)
    assert sorted(specs) == ["kafka", "nats"] and list(specs["kafka"]) == ["default"]
    path = write(tmp_path, "kafka:\n  prod: {bootstrap_servers: p:9092}\n")
    both = load(path, {}, legacy)
    assert sorted(both["kafka"]) == ["default", "prod"]
    clash = write(tmp_path, "kafka:\n  default: {bootstrap_servers: p:9092}\n")
    with pytest.raises(ConnectionsError, match="kafka.default is defined there and by the environment"):
        load(clash, {}, legacy)


def test_it_stops_start_up_with_a_message_instead_of_a_traceback(tmp_path):
    path = write(tmp_path, "kafka:\n  prod-eu:\n    bootstrap_servers: k:9092\n    security_protocol: SASL_SSL\n")
    env = {**os.environ, "SWITCHYARD_CONNECTIONS": str(path), "SWITCHYARD_TESTING": "1"}
    done = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert f"{path}: kafka.prod-eu: security_protocol SASL_SSL needs a sasl section" in done.stderr


def test_it_scrubs_connection_secrets_from_log_lines(settings, caplog, tmp_path):
    from brokers.connections import load as load_file
    from console import brokers
    from console.logfilter import ScrubSecrets

    path = write(tmp_path, "rabbitmq:\n  q: {url: 'amqp://u:Sup3r-Secret@mq:5672/v'}\n")
    settings.BROKERS = load_file(path, {})
    record = logging.LogRecord(
        "x", logging.WARNING, __file__, 1, "connect %s failed", ("amqp://u:Sup3r-Secret@mq",), None
    )
    ScrubSecrets().filter(record)
    assert record.getMessage() == "connect amqp://u:***@mq failed"
    assert brokers.scrub("error at amqp://u:Sup3r-Secret@mq:5672/v") == "error at ***"
