"""CloudEvents on SQS and NATS (Kafka and RabbitMQ: test_decoding, test_local_schemas): binary mode with `ce-`
message attributes / headers and structured mode, sent with the brokers' clients, ingested by the worker's step."""

from __future__ import annotations

import gzip
import json
import uuid

import boto3
import pytest
from django.conf import settings

from console import brokers
from dlq.models import DeadLetterSource
from tests.formats.conftest import ingest_all

pytestmark = pytest.mark.django_db(transaction=True)

STRUCTURED = {
    "specversion": "1.0",
    "type": "com.acme.invoice.overdue",
    "source": "/services/billing",
    "id": "evt-789",
    "subject": "saga-inv-1",
    "data": {"invoice": "inv-1", "days": 31},
}


def test_it_decodes_binary_and_structured_cloudevents_on_sqs(destinations):
    queue = destinations("sqs", f"sy-{uuid.uuid4().hex[:10]}-dlq")
    config = settings.BROKERS["sqs"]["default"]
    client = boto3.client(
        "sqs",
        endpoint_url=config.endpoint_url,
        region_name=config.region,
        aws_access_key_id=config.access_key_id,
        aws_secret_access_key=config.secret_access_key.get_secret_value(),
    )
    url = client.get_queue_url(QueueName=queue)["QueueUrl"]

    def attr(value: str) -> dict:
        return {"DataType": "String", "StringValue": value}

    binary = {
        "ce-specversion": attr("1.0"),
        "ce-type": attr("com.acme.invoice.created"),
        "ce-source": attr("/services/billing"),
        "ce-id": attr("evt-sqs-1"),
        "ce-subject": attr("saga-sqs"),
        "n": attr("binary"),
    }
    client.send_message(QueueUrl=url, MessageBody=json.dumps({"invoice": "inv-sqs"}), MessageAttributes=binary)
    client.send_message(
        QueueUrl=url,
        MessageBody=json.dumps(STRUCTURED),
        MessageAttributes={"n": attr("structured"), "content-type": attr("application/cloudevents+json")},
    )
    source = DeadLetterSource.objects.create(broker="sqs", destination=queue, conventions={"visibility_timeout": 5})

    letters = ingest_all(source, 2)

    b = letters["binary"]
    assert b.decoded["cloudevent"]["id"] == "evt-sqs-1" and b.decoded["value"] == {"invoice": "inv-sqs"}
    assert (b.message_type, b.correlation_id) == ("com.acme.invoice.created", "saga-sqs")
    s = letters["structured"]
    assert s.decoded["decoder"] == "cloudevents" and s.decoded["value"] == {"invoice": "inv-1", "days": 31}
    assert (s.message_type, s.correlation_id) == ("com.acme.invoice.overdue", "saga-inv-1")


def test_it_decodes_a_binary_cloudevent_with_a_gzip_body_and_a_structured_one_on_nats(destinations):
    stream = destinations("nats", f"SY-{uuid.uuid4().hex[:10]}-DLQ")
    nats = brokers.get("nats")
    headers = {
        "ce-specversion": "1.0",
        "ce-type": "com.acme.parcel.lost",
        "ce-source": "/services/shipping",
        "ce-id": "evt-nats-1",
        "content-encoding": "gzip",
        "n": "binary",
    }
    nats.publish(stream, gzip.compress(json.dumps({"parcel": "p-1"}).encode()), None, headers)
    nats.publish(stream, json.dumps(STRUCTURED).encode(), None, {"n": "structured"})  # no content type: by its shape
    source = DeadLetterSource.objects.create(broker="nats", destination=stream)

    letters = ingest_all(source, 2)

    b = letters["binary"]
    assert b.decoded["compression"] == "gzip" and b.decoded["value"] == {"parcel": "p-1"}
    assert b.decoded["cloudevent"]["source"] == "/services/shipping"
    assert b.message_type == "com.acme.parcel.lost"
    s = letters["structured"]
    assert s.decoded["cloudevent"]["mode"] == "structured" and s.message_type == "com.acme.invoice.overdue"
