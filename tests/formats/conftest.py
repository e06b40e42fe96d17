import uuid

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from brokers.connections import SchemaRegistry
from console import brokers
from dlq import ingest
from dlq.models import DeadLetter, DeadLetterSource
from formats import confluent, registries
from tests.dlq.conftest import destinations  # noqa: F401 - the fixture, shared
from tests.formats.registry import Registry

USER, PASSWORD = "sr-user", "sr-secret-Pa55"


@pytest.fixture
def registry():
    with Registry(USER, PASSWORD) as served:
        yield served


@pytest.fixture
def kafka(settings, registry):
    """The tests' Kafka connection with the served registry (basic auth) in its schema_registry block."""
    spec = settings.BROKERS["kafka"]["default"].model_copy(
        update={"schema_registry": SchemaRegistry(url=registry.url, username=USER, password=PASSWORD)}
    )
    settings.BROKERS = {**settings.BROKERS, "kafka": {"default": spec}}
    brokers.reset()
    registries.reset()
    confluent._serdes.clear()
    confluent._missing.clear()
    yield spec
    brokers.reset()
    registries.reset()
    confluent._serdes.clear()
    confluent._missing.clear()


@pytest.fixture
def producer_client(registry):
    """confluent-kafka's own registry client, as a producing service would configure it."""
    return SchemaRegistryClient({"url": registry.url, "basic.auth.user.info": f"{USER}:{PASSWORD}"})


@pytest.fixture
def produce(kafka):
    producer = Producer({"bootstrap.servers": ",".join(kafka.bootstrap_servers)})

    def send(topic: str, value: bytes, headers: dict[str, bytes] | None = None, key: bytes | None = None) -> None:
        producer.produce(topic, value=value, key=key, headers=list((headers or {}).items()))

    yield send
    producer.flush(10)


@pytest.fixture
def dlq_topic(destinations):  # noqa: F811 - the fixture imported above
    return destinations("kafka", f"sy-{uuid.uuid4().hex[:10]}.DLQ")


def ingest_all(source: DeadLetterSource, n: int, rounds: int = 60) -> dict[str, DeadLetter]:
    """Run the ingest worker's step until `n` letters of `source` are stored; by their `n` header."""
    for _ in range(rounds):
        if DeadLetter.objects.filter(source=source).count() >= n:
            break
        ingest.run_once(source, max_messages=100, timeout=1.0)
    rows = list(DeadLetter.objects.filter(source=source))
    assert len(rows) >= n, f"{len(rows)} of {n} stored; source error: {source.last_error}"
    return {dl.headers.get("n", dl.message_id): dl for dl in rows}
