"""Real brokers for the adapter tests: noida-db, tansu and moto started here (unless the environment names running
ones), RabbitMQ and NATS from the machine. Every test gets destinations with unique names and deletes them."""

import os
import uuid
from collections.abc import Callable, Iterator

import pytest

from brokers.base import BrokerAdapter
from brokers.kafka import KafkaAdapter
from brokers.nats import NatsAdapter
from brokers.rabbitmq import RabbitMQAdapter
from brokers.sqs import SqsAdapter
from tools import secure_services, services

ADAPTERS = ["kafka-noida", "kafka-tansu", "sqs", "rabbitmq", "nats"]
# tansu takes session.timeout.ms / 2 to complete a consumer-group join; 6 s keeps joins near 3 s.
TANSU_CONFIG = {"session.timeout.ms": 6000}


def _service_or_env(variable: str, start: Callable[[], services.Service]) -> Iterator[str]:
    if os.environ.get(variable):
        yield os.environ[variable]
        return
    service = start()
    try:
        yield service.url
    finally:
        service.stop()


@pytest.fixture(scope="session")
def service_logs(tmp_path_factory) -> str:
    return tmp_path_factory.mktemp("service-logs")


@pytest.fixture(scope="session")
def noida_bootstrap(service_logs) -> Iterator[str]:
    yield from _service_or_env("KAFKA_BOOTSTRAP_SERVERS", lambda: services.start_noida(log_dir=service_logs))


@pytest.fixture(scope="session")
def tansu_bootstrap(service_logs) -> Iterator[str]:
    yield from _service_or_env("TANSU_BOOTSTRAP_SERVERS", lambda: services.start_tansu(log_dir=service_logs))


@pytest.fixture(scope="session")
def moto_endpoint(service_logs) -> Iterator[str]:
    yield from _service_or_env("SQS_ENDPOINT_URL", lambda: services.start_moto(log_dir=service_logs))


def _system_url(variable: str, default: str) -> str:
    url = os.environ.get(variable) or default
    if not services.is_reachable(url):
        pytest.fail(f"{variable} ({url}) does not answer; this machine is expected to run it")
    return url


@pytest.fixture
def noida_kafka_adapter(noida_bootstrap) -> Iterator[KafkaAdapter]:
    with KafkaAdapter(noida_bootstrap) as adapter:
        yield adapter


@pytest.fixture
def tansu_kafka_adapter(tansu_bootstrap) -> Iterator[KafkaAdapter]:
    with KafkaAdapter(tansu_bootstrap, TANSU_CONFIG) as adapter:
        yield adapter


@pytest.fixture(params=["noida", "tansu"])
def kafka_adapter(request) -> KafkaAdapter:
    return request.getfixturevalue(f"{request.param}_kafka_adapter")


@pytest.fixture
def sqs_adapter(moto_endpoint) -> Iterator[SqsAdapter]:
    with SqsAdapter(moto_endpoint, "us-east-1", "test", "test") as adapter:
        yield adapter


@pytest.fixture
def rabbitmq_adapter() -> Iterator[RabbitMQAdapter]:
    url = _system_url("RABBITMQ_URL", services.SYSTEM_URLS["RABBITMQ_URL"])
    with RabbitMQAdapter(url, os.environ.get("RABBITMQ_MANAGEMENT_URL") or None) as adapter:
        yield adapter


@pytest.fixture
def nats_adapter() -> Iterator[NatsAdapter]:
    with NatsAdapter(_system_url("NATS_URL", services.SYSTEM_URLS["NATS_URL"])) as adapter:
        yield adapter


@pytest.fixture(params=ADAPTERS)
def any_adapter(request) -> BrokerAdapter:
    name = request.param.replace("-", "_").removeprefix("kafka_") + ("_kafka" if "kafka" in request.param else "")
    return request.getfixturevalue(f"{name}_adapter")


@pytest.fixture
def new_destination() -> Iterator[Callable[..., str]]:
    """new_destination(adapter, **options) -> a freshly ensured destination with a unique name, deleted afterwards."""
    made: list[tuple[BrokerAdapter, str]] = []

    def make(adapter: BrokerAdapter, suffix: str = "", **options) -> str:
        # Letters, digits and "-" only: valid as a topic, SQS queue, RabbitMQ queue and NATS stream name alike.
        name = f"sy-{uuid.uuid4().hex[:12]}{suffix}"
        adapter.ensure_destination(name, **options)
        made.append((adapter, name))
        return name

    yield make
    for adapter, name in made:
        adapter.delete_destination(name)


# --- TLS and authentication (issue 11): servers from tools.secure_services, started when a test first needs them ---


@pytest.fixture(scope="session")
def certs(tmp_path_factory) -> secure_services.Certificates:
    return secure_services.make_certificates(tmp_path_factory.mktemp("certs"))


def _started(start: Callable[[], services.Service]) -> Iterator[services.Service]:
    service = start()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def tansu_tls(certs, service_logs) -> Iterator[services.Service]:
    """tansu behind a TLS terminator (SSL): the server certificate is the test CA's."""
    yield from _started(lambda: secure_services.start_tansu_tls(certs, log_dir=service_logs))


@pytest.fixture(scope="session")
def tansu_mtls(certs, service_logs) -> Iterator[services.Service]:
    """tansu behind a TLS terminator that requires a client certificate from the test CA."""
    yield from _started(lambda: secure_services.start_tansu_tls(certs, require_client_cert=True, log_dir=service_logs))


@pytest.fixture(scope="session")
def tansu_sasl_ssl(certs, service_logs) -> Iterator[services.Service]:
    """tansu with --authentication (SCRAM) behind a TLS terminator: SASL_SSL."""
    yield from _started(lambda: secure_services.start_tansu_tls(certs, authentication=True, log_dir=service_logs))


@pytest.fixture(scope="session")
def nats_users(tmp_path_factory) -> tuple[secure_services.NatsUsers, dict]:
    return secure_services.make_nats_users(tmp_path_factory.mktemp("nats-users"))


NATS_DOMAIN = "sy-hub"


@pytest.fixture(scope="session")
def nats_tls(certs, nats_users, service_logs) -> Iterator[services.Service]:
    """nats-server over TLS with a password user and an nkey user, JetStream in domain NATS_DOMAIN."""
    users, known = nats_users
    yield from _started(
        lambda: secure_services.start_nats(
            certs, users, known, "users", jetstream_domain=NATS_DOMAIN, log_dir=service_logs
        )
    )


@pytest.fixture(scope="session")
def nats_token(certs, nats_users, service_logs) -> Iterator[services.Service]:
    yield from _started(lambda: secure_services.start_nats(certs, *nats_users, "token", log_dir=service_logs))


@pytest.fixture(scope="session")
def nats_operator(certs, nats_users, service_logs) -> Iterator[services.Service]:
    """nats-server in operator mode: users come with creds files (JWT + seed)."""
    yield from _started(lambda: secure_services.start_nats(certs, *nats_users, "operator", log_dir=service_logs))


@pytest.fixture(scope="session")
def nats_mtls(certs, nats_users, service_logs) -> Iterator[services.Service]:
    """nats-server that requires a client certificate from the test CA (verify: true)."""
    yield from _started(
        lambda: secure_services.start_nats(certs, *nats_users, "none", verify_client_cert=True, log_dir=service_logs)
    )


RABBITMQ_TLS_USER = "switchyard"
RABBITMQ_TLS_PASSWORD = "p@ss:w/rd-" + uuid.uuid4().hex[:8]  # characters a URL must percent-encode
RABBITMQ_TLS_VHOST = "orders/eu"  # a slash: %2F in the URL


@pytest.fixture(scope="session")
def rabbitmq_tls(certs, service_logs) -> Iterator[secure_services.TlsRabbit]:
    """A RabbitMQ node of the tests' own with an amqps listener and the management API on https."""
    node = secure_services.start_rabbitmq_tls(
        certs, RABBITMQ_TLS_USER, RABBITMQ_TLS_PASSWORD, RABBITMQ_TLS_VHOST, log_dir=service_logs
    )
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def moto_eu(service_logs) -> Iterator[services.Service]:
    """A moto server of its own, standing for one AWS account (any credentials are accepted)."""
    yield from _started(lambda: services.start_moto(log_dir=service_logs))


@pytest.fixture(scope="session")
def moto_iam(service_logs) -> Iterator[secure_services.AuthMoto]:
    """A second moto server, standing for another account, that checks credentials as AWS does."""
    server = secure_services.start_moto_with_iam(log_dir=service_logs)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def token_endpoint() -> Iterator[secure_services.TokenEndpoint]:
    """An OAuth 2.0 authorization server issuing JWTs to one client by the client-credentials grant."""
    endpoint = secure_services.start_token_endpoint("switchyard-kafka", "client-secret-" + uuid.uuid4().hex)
    try:
        yield endpoint
    finally:
        endpoint.stop()
