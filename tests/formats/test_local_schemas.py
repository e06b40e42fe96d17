"""Without a registry: Avro by an .avsc file and Protobuf by a descriptor set, mapped by pattern in SWITCHYARD_SCHEMAS,
and Protobuf with no schema decoded structurally; on the real Kafka-compatible broker and RabbitMQ."""

from __future__ import annotations

import io
import json
import uuid

import amqp
import fastavro
import pytest
from google.protobuf import descriptor_pb2

from dlq.models import DeadLetterSource
from formats import local
from tests.formats.conftest import ingest_all
from tests.formats.test_decoding import ORDER_AVRO, shipment_class

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def schemas(tmp_path, settings):
    (tmp_path / "order.avsc").write_text(ORDER_AVRO)
    shipment = shipment_class()
    files = descriptor_pb2.FileDescriptorSet()
    shipment.DESCRIPTOR.file.CopyToProto(files.file.add())
    (tmp_path / "shipping.desc").write_bytes(files.SerializeToString())
    (tmp_path / "schemas.yaml").write_text(
        """
- match: "*-orders*"
  avro: order.avsc
- match: "*-shipments*"
  protobuf: {descriptor_set: shipping.desc, message: acme.shipping.ShipmentDelayed}
- match: "*-legacy*"
  protobuf: schemaless
"""
    )
    settings.SWITCHYARD_SCHEMAS = str(tmp_path / "schemas.yaml")
    local._cache.clear()
    yield shipment
    local._cache.clear()


def _avro(record: dict) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(json.loads(ORDER_AVRO)), record)
    return out.getvalue()


def test_it_decodes_avsc_descriptor_set_and_schemaless_protobuf_on_kafka(destinations, produce, schemas):
    shipment = schemas
    run = uuid.uuid4().hex[:8]
    orders = destinations("kafka", f"sy-{run}-orders.DLQ")
    shipments = destinations("kafka", f"sy-{run}-shipments.DLQ")
    legacy = destinations("kafka", f"sy-{run}-legacy.DLQ")
    produce(orders, _avro({"order_id": "ord-local", "quantity": 5, "note": "no registry", "signature": b"\x07"}))
    produce(shipments, shipment(shipment_id="shp-local", days=9, carriers=["dpd"]).SerializeToString())
    produce(legacy, shipment(shipment_id="shp-raw", days=4).SerializeToString())
    produce(orders, b"\x00\x01\x02 not avro at all \xff" * 3, {"n": b"bad"})

    found = {}
    for topic, n in ((orders, 2), (shipments, 1), (legacy, 1)):
        found[topic] = ingest_all(DeadLetterSource.objects.create(broker="kafka", destination=topic), n)

    order = found[orders]["0:0"]
    assert order.decoded["decoder"] == "avro" and order.decoded["schema"]["source"] == "local"
    assert order.decoded["schema"]["file"].endswith("order.avsc")
    assert order.decoded["value"] == {
        "order_id": "ord-local",
        "quantity": 5,
        "note": "no registry",
        "signature": "Bw==",
    }
    bad = found[orders]["bad"].decoded
    assert bad["decoder"] == "hex" and any("order.avsc" in note for note in bad["notes"])
    (ship,) = found[shipments].values()
    assert ship.decoded["decoder"] == "protobuf"
    assert ship.decoded["value"] == {"shipment_id": "shp-local", "days": 9, "carriers": ["dpd"]}
    assert ship.message_type == "acme.shipping.ShipmentDelayed"
    (raw,) = found[legacy].values()
    assert raw.decoded["decoder"] == "protobuf-raw"
    assert raw.decoded["value"]["fields"] == {"1": "shp-raw", "2": 4}
    assert raw.decoded["value"]["types"] == {"1": "string", "2": "int"}


def test_it_decodes_an_avsc_body_and_a_binary_cloudevent_on_rabbitmq(destinations, schemas):
    queue = destinations("rabbitmq", f"sy-{uuid.uuid4().hex[:8]}-orders-dlq")
    connection = amqp.Connection("127.0.0.1:5672", userid="guest", password="guest")
    connection.connect()
    channel = connection.channel()
    headers = {
        "ce-specversion": "1.0",
        "ce-type": "com.acme.order.placed",
        "ce-source": "/services/checkout",
        "ce-id": "evt-rmq-1",
        "ce-subject": "saga-rmq",
    }
    body = _avro({"order_id": "ord-rmq", "quantity": 1, "note": None, "signature": b""})
    channel.basic_publish(amqp.Message(body, application_headers=headers), "", queue)
    connection.close()
    source = DeadLetterSource.objects.create(broker="rabbitmq", destination=queue, origin="orders")

    (dl,) = ingest_all(source, 1).values()

    assert dl.decoded["decoder"] == "avro" and dl.decoded["value"]["order_id"] == "ord-rmq"
    assert dl.decoded["cloudevent"]["source"] == "/services/checkout"
    assert (dl.message_type, dl.correlation_id) == ("com.acme.order.placed", "saga-rmq")
