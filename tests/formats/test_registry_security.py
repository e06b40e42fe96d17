"""The registry reached over TLS with the connection's own CA and a bearer token, and a registry that refuses the
credentials: the letter is still stored, its body shown as hex with the registry's answer, and no secret anywhere."""

from __future__ import annotations

import ssl

import pytest
import trustme
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from brokers.connections import SchemaRegistry, Tls
from console import brokers
from dlq.models import DeadLetterSource
from formats import confluent, registries
from tests.formats.conftest import ingest_all
from tests.formats.registry import Registry
from tests.formats.test_decoding import ORDER_AVRO

pytestmark = pytest.mark.django_db(transaction=True)
TOKEN = "bearer-token-Zq9x"


@pytest.fixture
def tls_registry(tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with Registry(token=TOKEN, tls=context) as served:
        yield served, str(ca_file)


def _use(settings, spec: SchemaRegistry):
    kafka = settings.BROKERS["kafka"]["default"].model_copy(update={"schema_registry": spec})
    settings.BROKERS = {**settings.BROKERS, "kafka": {"default": kafka}}
    brokers.reset()
    registries.reset()
    confluent._serdes.clear()
    return kafka


def test_it_decodes_through_a_tls_registry_with_a_bearer_token(settings, tls_registry, destinations, dlq_topic):
    served, ca_file = tls_registry
    spec = SchemaRegistry(url=served.url, bearer_token=TOKEN, logical_cluster="lsrc-1", tls=Tls(ca_file=ca_file))
    kafka = _use(settings, spec)
    producer_client = SchemaRegistryClient(spec.client_conf())
    body = AvroSerializer(producer_client, ORDER_AVRO)(
        {"order_id": "ord-tls", "quantity": 1, "note": None, "signature": b""},
        SerializationContext(dlq_topic, MessageField.VALUE),
    )
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": ",".join(kafka.bootstrap_servers)})
    producer.produce(dlq_topic, body)
    producer.flush(10)

    (dl,) = ingest_all(DeadLetterSource.objects.create(broker="kafka", destination=dlq_topic), 1).values()
    assert dl.decoded["decoder"] == "avro" and dl.decoded["value"]["order_id"] == "ord-tls"

    # Refused credentials: stored all the same, the reason shown, the token nowhere.
    _use(settings, SchemaRegistry(url=served.url, bearer_token="wrong-token-123", logical_cluster="x",
                                  tls=Tls(ca_file=ca_file)))  # fmt: skip
    producer.produce(dlq_topic, body, headers=[("n", b"refused")])
    producer.flush(10)
    source = DeadLetterSource.objects.get(destination=dlq_topic)
    letters = ingest_all(source, 2)
    refused = letters["refused"].decoded
    assert refused["decoder"] == "hex" and "Unauthorized" in refused["error"]
    assert "wrong-token-123" not in str(refused) and TOKEN not in str(refused)
