"""Dead letters as the frameworks write them, put on the real brokers byte for byte as each one's documentation and
source describe (Spring Kafka's DeadLetterPublishingRecoverer, Kafka Connect's DeadLetterQueueReporter, MassTransit's
error and skipped transports, NServiceBus's recoverability, AWS Lambda's destinations and legacy DLQs), ingested with
no configuration: origin and original position, the root cause as the grouping key, message, stack trace, message
type, correlation id, first failure and delivery count; replay goes back to the original topic or queue."""

from __future__ import annotations

import json
import struct
import uuid
from datetime import UTC, datetime

import amqp
import boto3
import pytest
from confluent_kafka import Producer
from django.conf import settings

from brokers import connections
from console import brokers
from console.operations import execute
from dlq import discovery, ingest
from dlq.models import DeadLetter, DeadLetterSource, ReplayRecord
from tests.dlq.conftest import wait_until

pytestmark = pytest.mark.django_db

# --- what the frameworks write ---

SPRING_WRAPPER = "org.springframework.kafka.listener.ListenerExecutionFailedException"


def spring_trace(listener_line: int, causes: list[tuple[str, str]]) -> str:
    """A stack trace as DeadLetterPublishingRecoverer writes it (Throwable.printStackTrace of the wrapper)."""
    lines = [
        f"{SPRING_WRAPPER}: Listener method 'public void com.example.orders.OrderListener.listen(com.example.orders."
        f"OrderPlaced)' threw exception",
        "\tat org.springframework.kafka.listener.KafkaMessageListenerContainer$ListenerConsumer.decorateException("
        "KafkaMessageListenerContainer.java:2925)",
        "\tat org.springframework.kafka.listener.KafkaMessageListenerContainer$ListenerConsumer.doInvokeOnMessage("
        "KafkaMessageListenerContainer.java:2866)",
        "\tat java.base/java.lang.Thread.run(Thread.java:1583)",
    ]
    for fqcn, message in causes:
        lines += [
            f"Caused by: {fqcn}: {message}",
            f"\tat com.example.orders.OrderListener.listen(OrderListener.java:{listener_line})",
            "\t... 14 more",
        ]
    return "\n".join(lines) + "\n"


def spring_headers(topic: str, partition: int, offset: int, cause: str, trace: str) -> list[tuple[str, bytes]]:
    """The headers DeadLetterPublishingRecoverer adds (KafkaHeaders.DLT_*): positions as big-endian binary."""
    return [
        ("__TypeId__", b"com.example.orders.OrderPlaced"),  # Spring's JsonSerializer type header, kept
        ("kafka_dlt-original-topic", topic.encode()),
        ("kafka_dlt-original-partition", struct.pack(">i", partition)),
        ("kafka_dlt-original-offset", struct.pack(">q", offset)),
        ("kafka_dlt-original-timestamp", struct.pack(">q", 1_764_670_000_000)),
        ("kafka_dlt-original-timestamp-type", b"CreateTime"),
        ("kafka_dlt-original-consumer-group", b"orders-service"),
        ("kafka_dlt-exception-fqcn", SPRING_WRAPPER.encode()),
        ("kafka_dlt-exception-cause-fqcn", cause.encode()),
        ("kafka_dlt-exception-message", b"Listener method 'public void com.example.orders.OrderListener.listen("
         b"com.example.orders.OrderPlaced)' threw exception"),
        ("kafka_dlt-exception-stacktrace", trace.encode()),
    ]  # fmt: skip


def _producer() -> Producer:
    return Producer({"bootstrap.servers": ",".join(settings.BROKERS["kafka"]["default"].bootstrap_servers)})


def _produce(topic: str, records: list[dict]) -> None:
    producer = _producer()
    reports = []
    for record in records:
        producer.produce(topic, on_delivery=lambda err, msg: reports.append(err), **record)
    producer.flush(30)
    assert reports == [None] * len(records)


def _ingest(source: DeadLetterSource, n: int) -> list[DeadLetter]:
    wait_until(lambda: ingest.run_once(source) is not None and DeadLetter.objects.filter(source=source).count() >= n)
    return list(DeadLetter.objects.filter(source=source).order_by("id"))


def _replay(world, dl: DeadLetter, key: str) -> str:
    client = world.client(world.operator)
    body = {"ids": [dl.pk], "reason": "fixed", "idempotency_key": key}
    response = client.post("/api/v1/dead-letters/replay", body, content_type="application/json")
    assert response.status_code == 201, response.content
    assert execute(response.json()["operation"]["id"]) == "succeeded"
    return ReplayRecord.objects.get(dead_letter=dl).destination


def _amqp():
    return amqp.Connection("127.0.0.1:5672", userid="guest", password="guest")


def _amqp_publish(queue: str, body: bytes, headers: dict, **properties) -> None:
    with _amqp() as connection:
        channel = connection.channel()
        channel.basic_publish(amqp.Message(body, application_headers=headers, **properties), routing_key=queue)


def _sqs_client():
    config = settings.BROKERS["sqs"]["default"]
    return boto3.client(
        "sqs",
        endpoint_url=config.endpoint_url,
        region_name=config.region,
        aws_access_key_id=config.access_key_id,
        aws_secret_access_key=config.secret_access_key.get_secret_value(),
    )


# --- Spring Kafka ---


def test_it_reads_spring_kafkas_dead_letter_topic_and_groups_by_the_root_cause(world, destinations):
    base = f"sy-{uuid.uuid4().hex[:10]}"
    origin = destinations("kafka", base)
    dlt = destinations("kafka", base + ".DLT")  # DeadLetterPublishingRecoverer's default; "-dlt" for retry topics
    declined = "com.example.orders.PaymentDeclinedException"
    _produce(
        dlt,
        [
            {"key": b"order-42", "value": b'{"order": 42}', "headers": spring_headers(
                origin, 3, 1_234_567_890_123, declined, spring_trace(31, [(declined, "card declined for order 42")]))},
            # The same root cause under another wrapper chain: one group with the first.
            {"key": b"order-43", "value": b'{"order": 43}', "headers": spring_headers(
                origin, 0, 7, "com.example.orders.BillingException", spring_trace(40, [
                    ("com.example.orders.BillingException", "billing failed"),
                    (declined, "card declined for order 43")]))},
            # Another root cause: another group.
            {"key": b"order-44", "value": b'{"order": 44}', "headers": spring_headers(
                origin, 1, 8, "com.example.orders.BillingException", spring_trace(40, [
                    ("com.example.orders.BillingException", "billing failed"),
                    ("java.net.SocketTimeoutException", "Read timed out")]))},
        ],
    )  # fmt: skip

    discovery.discover()
    source = DeadLetterSource.objects.get(broker="kafka", destination=dlt)
    first, second, third = _ingest(source, 3)

    assert (first.origin, first.origin_partition, first.origin_offset) == (origin, 3, 1_234_567_890_123)
    assert (second.origin_partition, second.origin_offset) == (0, 7)
    assert first.exception_type == declined and first.exception_message == "card declined for order 42"
    assert first.stacktrace.startswith(SPRING_WRAPPER) and "Caused by: " + declined in first.stacktrace
    assert first.message_type == "com.example.orders.OrderPlaced"
    assert first.failed_in == "orders-service" and first.convention == "spring-kafka"
    assert second.exception_type == declined and second.fingerprint == first.fingerprint
    assert third.exception_type == "java.net.SocketTimeoutException" and third.fingerprint != first.fingerprint
    source.refresh_from_db()
    assert source.convention == "spring-kafka"

    page = world.client(world.viewer).get(f"/dead-letters/{first.pk}/").content.decode()
    assert "(partition 3, offset 1234567890123)" in page and "Spring Kafka" in page
    sources = world.client(world.viewer).get("/dead-letters/sources/").content.decode()
    row = next(line for line in sources.split("<tr>") if dlt in line)
    assert 'data-testid="source-convention">Spring Kafka<' in row

    assert _replay(world, first, "spring") == origin
    replayed = wait_until(lambda: brokers.get("kafka").read(origin, 10, 5))
    assert replayed[0].body == b'{"order": 42}' and replayed[0].key == b"order-42"
    assert not any(name.startswith("kafka_dlt-") for name in replayed[0].headers)


def test_it_reads_the_attempts_of_spring_kafkas_retry_topics(destinations):
    origin = destinations("kafka", f"sy-{uuid.uuid4().hex[:10]}")
    dlt = destinations("kafka", origin + "-dlt")  # @RetryableTopic's default DLT suffix
    trace = spring_trace(31, [("java.lang.IllegalStateException", "stock service down")])
    headers = spring_headers(origin, 0, 5, "java.lang.IllegalStateException", trace)
    _produce(
        dlt,
        [
            # Spring Kafka 3 writes the attempts as a 4-byte int; 2.x as BigInteger.toByteArray (one byte here).
            {"value": b"a", "headers": [*headers, ("retry_topic-attempts", struct.pack(">i", 4))]},
            {"value": b"b", "headers": [*headers, ("retry_topic-attempts", bytes([3]))]},
        ],
    )
    discovery.discover()
    four, three = _ingest(DeadLetterSource.objects.get(broker="kafka", destination=dlt), 2)
    assert (four.delivery_count, three.delivery_count) == (4, 3)
    assert four.origin == origin and four.exception_type == "java.lang.IllegalStateException"


def test_it_reads_kafka_connects_error_context_headers(world, destinations):
    origin = destinations("kafka", f"sy-{uuid.uuid4().hex[:10]}")
    dlq = destinations("kafka", f"dlq-jdbc-sink-{uuid.uuid4().hex[:6]}")  # errors.deadletterqueue.topic.name
    trace = (
        "org.apache.kafka.connect.errors.DataException: Converting byte[] to Kafka Connect data failed due to "
        f"serialization error of topic {origin}: \n"
        "\tat io.confluent.connect.json.JsonSchemaConverter.toConnectData(JsonSchemaConverter.java:119)\n"
        "\tat org.apache.kafka.connect.storage.Converter.toConnectData(Converter.java:88)\n"
        "\tat org.apache.kafka.connect.runtime.WorkerSinkTask.convertValue(WorkerSinkTask.java:545)\n"
        "Caused by: org.apache.kafka.common.errors.SerializationException: Error deserializing JSON message for id -1\n"
        "\tat io.confluent.kafka.serializers.json.KafkaJsonSchemaDeserializer.deserialize("
        "KafkaJsonSchemaDeserializer.java:180)\n"
        "\t... 17 more\n"
        "Caused by: org.apache.kafka.common.errors.SerializationException: Unknown magic byte!\n"
        "\tat io.confluent.kafka.serializers.AbstractKafkaSchemaSerDe.getByteBuffer("
        "AbstractKafkaSchemaSerDe.java:600)\n"
        "\t... 19 more\n"
    )
    # DeadLetterQueueReporter.populateContextHeaders: every value UTF-8 text, numbers as their decimal digits.
    headers = [
        ("__connect.errors.topic", origin.encode()),
        ("__connect.errors.partition", b"2"),
        ("__connect.errors.offset", b"90210"),
        ("__connect.errors.connector.name", b"jdbc-sink"),
        ("__connect.errors.task.id", b"0"),
        ("__connect.errors.stage", b"VALUE_CONVERTER"),
        ("__connect.errors.class.name", b"io.confluent.connect.json.JsonSchemaConverter"),
        ("__connect.errors.exception.class.name", b"org.apache.kafka.connect.errors.DataException"),
        ("__connect.errors.exception.message", f"Converting byte[] to Kafka Connect data failed due to "
         f"serialization error of topic {origin}: ".encode()),
        ("__connect.errors.exception.stacktrace", trace.encode()),
    ]  # fmt: skip
    _produce(dlq, [{"key": b"k", "value": b'{"id": 1}', "headers": headers}])
    source = DeadLetterSource.objects.create(broker="kafka", destination=dlq)
    (dl,) = _ingest(source, 1)

    assert (dl.origin, dl.origin_partition, dl.origin_offset) == (origin, 2, 90210)
    assert dl.exception_type == "org.apache.kafka.common.errors.SerializationException"
    assert dl.exception_message == "Unknown magic byte!"
    assert dl.stacktrace == trace and dl.convention == "kafka-connect"
    assert dl.failed_in == "jdbc-sink task 0 (VALUE_CONVERTER)"
    assert _replay(world, dl, "connect") == origin
    (back,) = wait_until(lambda: brokers.get("kafka").read(origin, 10, 5))
    assert back.body == b'{"id": 1}' and not [name for name in back.headers if name.startswith("__connect.")]


# --- MassTransit ---


def masstransit_envelope(queue: str, correlation: str) -> dict:
    return {
        "messageId": "0f000000-ac12-0242-2c3d-08dc4b6f1a2b",
        "requestId": None,
        "correlationId": correlation,
        "conversationId": "0f000000-ac12-0242-6a4e-08dc4b6f1a2b",
        "initiatorId": None,
        "sourceAddress": "rabbitmq://localhost/web1_Orders_bus_6f1ayyr5ghbbkpmbbdpznq4r8e?temporary=true",
        "destinationAddress": f"rabbitmq://localhost/{queue}",
        "responseAddress": None,
        "faultAddress": None,
        "messageType": ["urn:message:Contracts:SubmitOrder"],
        "message": {"orderId": "c1f0a2b4-0000-0000-0000-000000000042", "amount": 12.5},
        "expirationTime": None,
        "sentTime": "2026-12-02T10:15:29.9876543Z",
        "headers": {},
        "host": {
            "machineName": "web1",
            "processName": "Orders",
            "processId": 4242,
            "assembly": "Orders",
            "assemblyVersion": "1.0.0.0",
            "frameworkVersion": "8.0.4",
            "massTransitVersion": "8.2.2.0",
            "operatingSystemVersion": "Unix 6.1.0.0",
        },
    }


def test_it_reads_masstransits_error_and_skipped_queues(world, destinations):
    base = f"sy-{uuid.uuid4().hex[:10]}"
    queue = destinations("rabbitmq", base)
    error = destinations("rabbitmq", base + "_error")
    skipped = destinations("rabbitmq", base + "_skipped")
    correlation = str(uuid.uuid4())
    envelope = json.dumps(masstransit_envelope(queue, correlation)).encode()
    properties = {"content_type": "application/vnd.masstransit+json", "delivery_mode": 2,
                  "message_id": "0f000000-ac12-0242-2c3d-08dc4b6f1a2b"}  # fmt: skip
    host = {"MT-Host-MachineName": "web1", "MT-Host-ProcessName": "Orders", "MT-Host-ProcessId": 4242,
            "MT-Host-Assembly": "Orders", "MT-Host-MassTransitVersion": "8.2.2.0"}  # fmt: skip
    # ErrorTransportFilter: SetExceptionHeaders (of the base exception) and the host headers; a retry count as int.
    fault = {
        "MT-Reason": "fault",
        "MT-Fault-ExceptionType": "System.TimeoutException",
        "MT-Fault-InputAddress": f"rabbitmq://localhost/{queue}",
        "MT-Fault-Message": "The inventory service did not answer within 00:00:05",
        "MT-Fault-Timestamp": "2026-12-02T10:15:30.1234567Z",
        "MT-Fault-StackTrace": "   at Orders.SubmitOrderConsumer.Consume(ConsumeContext`1 context) in "
        "/src/Orders/SubmitOrderConsumer.cs:line 27\n   at MassTransit.DependencyInjection.ScopeConsumerFactory`1.Send",
        "MT-Fault-ConsumerType": "Orders.SubmitOrderConsumer",
        "MT-Fault-MessageType": "Contracts.SubmitOrder",
        "MT-Fault-RetryCount": 4,
        **host,
    }
    _amqp_publish(error, envelope, fault, **properties)
    _amqp_publish(skipped, envelope, {"MT-Reason": "dead-letter", **host}, **properties)

    discovery.discover()  # both found by their names, with no dead-letter exchange leading there
    failed = _ingest(DeadLetterSource.objects.get(broker="rabbitmq", destination=error), 1)[0]
    assert failed.origin == queue and failed.convention == "masstransit"
    assert failed.exception_type == "System.TimeoutException"
    assert failed.exception_message == "The inventory service did not answer within 00:00:05"
    assert failed.stacktrace.startswith("   at Orders.SubmitOrderConsumer.Consume")
    assert failed.message_type == "Contracts.SubmitOrder" and failed.correlation_id == correlation
    assert failed.first_failure_at == datetime(2026, 12, 2, 10, 15, 30, 123456, tzinfo=UTC)
    assert failed.delivery_count == 5 and failed.failed_in == "Orders.SubmitOrderConsumer"

    gone = _ingest(DeadLetterSource.objects.get(broker="rabbitmq", destination=skipped), 1)[0]
    assert gone.origin == queue and gone.convention == "masstransit" and gone.reason == "skipped"
    assert gone.exception_type == "masstransit:skipped" and gone.message_type == "Contracts.SubmitOrder"
    assert gone.first_failure_at == datetime(2026, 12, 2, 10, 15, 29, 987654, tzinfo=UTC)

    assert _replay(world, failed, "mt") == queue
    back = wait_until(lambda: brokers.get("rabbitmq").read(queue, 10, 2))
    assert json.loads(back[0].body) == json.loads(envelope)
    assert "MT-Fault-ExceptionType" not in back[0].headers


def test_it_finds_and_reads_masstransits_error_queue_on_sqs(destinations):
    queue = destinations("sqs", f"sy-{uuid.uuid4().hex[:10]}")
    error = destinations("sqs", queue + "_error")  # no redrive policy leads there: MassTransit moves it itself
    correlation = str(uuid.uuid4())

    def attribute(value):
        kind = "Number" if isinstance(value, int) else "String"
        return {"DataType": kind, "StringValue": str(value)}

    # The Amazon SQS transport carries MassTransit's transport headers as message attributes.
    headers = {"MT-Reason": "fault", "MT-Fault-ExceptionType": "Orders.OutOfStockException",
               "MT-Fault-InputAddress": f"amazonsqs://eu-west-1/{queue}", "MT-Fault-Message": "sku 7 out of stock",
               "MT-Fault-Timestamp": "2026-12-02T10:15:30.1234567Z", "MT-Fault-StackTrace": "   at Orders.Consume()",
               "MT-Fault-MessageType": "Contracts.SubmitOrder", "MT-Fault-ConsumerType": "Orders.SubmitOrderConsumer",
               "MT-Fault-RetryCount": 2}  # fmt: skip
    client = _sqs_client()
    client.send_message(
        QueueUrl=client.get_queue_url(QueueName=error)["QueueUrl"],
        MessageBody=json.dumps(masstransit_envelope(queue, correlation)),
        MessageAttributes={name: attribute(value) for name, value in headers.items()},
    )
    discovery.discover()
    (dl,) = _ingest(DeadLetterSource.objects.get(broker="sqs", destination=error), 1)
    assert (dl.convention, dl.origin, dl.exception_type) == ("masstransit", queue, "Orders.OutOfStockException")
    assert dl.correlation_id == correlation and dl.delivery_count == 3


# --- NServiceBus ---


NSB_TRACE = (
    "System.InvalidOperationException: Could not bill order 42\n"
    " ---> System.TimeoutException: The operation has timed out.\n"
    "   at Billing.Gateway.Charge(Order order) in /src/Billing/Gateway.cs:line 12\n"
    "   --- End of inner exception stack trace ---\n"
    "   at Sales.PlaceOrderHandler.Handle(PlaceOrder message, IMessageHandlerContext context) in "
    "/src/Sales/PlaceOrderHandler.cs:line 31\n"
    "   at NServiceBus.Pipeline.MessageHandler.Invoke(Object message, IMessageHandlerContext handlerContext)"
)


def test_it_reads_nservicebus_error_queue(world, destinations, settings):
    endpoint = destinations("rabbitmq", f"sy-{uuid.uuid4().hex[:10]}-sales")
    error = destinations("rabbitmq", "error")
    with _amqp() as connection:
        connection.channel().queue_purge("error")
    conversation = str(uuid.uuid4())
    # Recoverability's headers on a message moved to the error queue (docs.particular.net, "Message headers").
    headers = {
        "NServiceBus.MessageId": "2a8b1c43-7d1e-4a9b-9c1e-b0f400a7e1c2",
        "NServiceBus.MessageIntent": "Send",
        "NServiceBus.ConversationId": conversation,
        "NServiceBus.CorrelationId": "2a8b1c43-7d1e-4a9b-9c1e-b0f400a7e1c2",
        "NServiceBus.OriginatingEndpoint": "Sales.Api",
        "NServiceBus.OriginatingMachine": "web1",
        "NServiceBus.ContentType": "application/json",
        "NServiceBus.EnclosedMessageTypes": "Sales.Messages.PlaceOrder, Sales.Messages, Version=1.0.0.0, "
        "Culture=neutral, PublicKeyToken=null",
        "NServiceBus.Version": "9.2.3",
        "NServiceBus.TimeSent": "2026-12-02 10:15:29:987654 Z",
        "NServiceBus.ProcessingEndpoint": "Sales",
        "NServiceBus.ProcessingMachine": "worker1",
        "NServiceBus.FailedQ": endpoint,
        "NServiceBus.ExceptionInfo.ExceptionType": "System.InvalidOperationException",
        "NServiceBus.ExceptionInfo.InnerExceptionType": "System.TimeoutException",
        "NServiceBus.ExceptionInfo.HelpLink": "",
        "NServiceBus.ExceptionInfo.Message": "Could not bill order 42",
        "NServiceBus.ExceptionInfo.Source": "Sales",
        "NServiceBus.ExceptionInfo.StackTrace": NSB_TRACE,
        "NServiceBus.TimeOfFailure": "2026-12-02 10:15:30:123456 Z",
        "NServiceBus.Retries": "2",
        "NServiceBus.Retries.Timestamp": "2026-12-02 10:15:20:000000 Z",
    }
    body = b'{"OrderId":"42","Amount":12.5}'
    _amqp_publish(error, body, headers, message_id="2a8b1c43-7d1e-4a9b-9c1e-b0f400a7e1c2", delivery_mode=2)

    discovery.discover()
    (dl,) = _ingest(DeadLetterSource.objects.get(broker="rabbitmq", destination="error"), 1)
    assert dl.origin == endpoint and dl.convention == "nservicebus"
    assert dl.exception_type == "System.TimeoutException"  # the inner one, not InvalidOperationException
    assert dl.exception_message == "The operation has timed out."
    assert dl.stacktrace == NSB_TRACE and dl.message_type == "Sales.Messages.PlaceOrder"
    assert dl.correlation_id == "2a8b1c43-7d1e-4a9b-9c1e-b0f400a7e1c2"
    assert dl.first_failure_at == datetime(2026, 12, 2, 10, 15, 30, 123456, tzinfo=UTC)
    assert dl.delivery_count == 3 and dl.failed_in == "Sales"
    # A viewer who may not read contents still sees the framework's failure headers, not the others' values.
    settings.CONTENTS_ROLE = "operator"
    shown = world.client(world.viewer).get(f"/api/v1/dead-letters/{dl.pk}").json()["headers"]
    assert shown["NServiceBus.ExceptionInfo.StackTrace"] == NSB_TRACE and shown["NServiceBus.FailedQ"] == endpoint
    assert shown["NServiceBus.OriginatingMachine"] is None
    assert _replay(world, dl, "nsb") == endpoint
    back = wait_until(lambda: brokers.get("rabbitmq").read(endpoint, 10, 2))
    assert back[0].body == body
    assert back[0].headers["NServiceBus.MessageId"] == headers["NServiceBus.MessageId"].encode()
    assert not [name for name in back[0].headers if "ExceptionInfo" in name or name == "NServiceBus.FailedQ"]


# --- AWS Lambda ---


def test_it_reads_lambda_on_failure_destination_records(world, destinations):
    queue = destinations("sqs", f"sy-{uuid.uuid4().hex[:10]}-failures")
    # The record an asynchronous invocation sends to its on-failure destination (Lambda docs, "Invocation records").
    record = {
        "version": "1.0",
        "timestamp": "2026-12-02T10:15:30.568Z",
        "requestContext": {
            "requestId": "e4b46cbf-b738-xmpl-8880-a18cdf61200e",
            "functionArn": "arn:aws:lambda:eu-west-1:123456789012:function:charge-card:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3,
        },
        "requestPayload": {"orderId": 42},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {
            "errorMessage": "card declined",
            "errorType": "CardDeclinedError",
            "requestId": "e4b46cbf-b738-xmpl-8880-a18cdf61200e",
            "stackTrace": [
                '  File "/var/task/handler.py", line 12, in handler\n    charge(event["orderId"])\n',
                '  File "/var/task/handler.py", line 5, in charge\n    raise CardDeclinedError("card declined")\n',
            ],
        },
    }
    client = _sqs_client()
    client.send_message(QueueUrl=client.get_queue_url(QueueName=queue)["QueueUrl"], MessageBody=json.dumps(record))
    source = DeadLetterSource.objects.create(broker="sqs", destination=queue)
    (dl,) = _ingest(source, 1)
    assert dl.convention == "lambda-destination" and dl.exception_type == "CardDeclinedError"
    assert dl.exception_message == "card declined" and "line 5, in charge" in dl.stacktrace
    assert dl.correlation_id == "e4b46cbf-b738-xmpl-8880-a18cdf61200e" and dl.reason == "RetriesExhausted"
    assert dl.first_failure_at == datetime(2026, 12, 2, 10, 15, 30, 568000, tzinfo=UTC)
    assert dl.delivery_count == 3
    assert dl.failed_in == "arn:aws:lambda:eu-west-1:123456789012:function:charge-card:$LATEST"


def test_it_reads_the_attributes_of_lambdas_legacy_dead_letter_queue(destinations):
    queue = destinations("sqs", f"sy-{uuid.uuid4().hex[:10]}-dlq")
    client = _sqs_client()
    client.send_message(
        QueueUrl=client.get_queue_url(QueueName=queue)["QueueUrl"],
        MessageBody='{"orderId": 42}',  # the event as the function was invoked with it
        MessageAttributes={
            "RequestID": {"DataType": "String", "StringValue": "0b2e4a1c-5f3d-4c8e-9a7b-1d2e3f4a5b6c"},
            "ErrorCode": {"DataType": "Number", "StringValue": "200"},
            "ErrorMessage": {"DataType": "String", "StringValue": "Task timed out after 3.00 seconds"},
        },
    )
    source = DeadLetterSource.objects.create(broker="sqs", destination=queue)
    (dl,) = _ingest(source, 1)
    assert dl.convention == "lambda-dlq" and dl.exception_type == "lambda:error 200"
    assert dl.exception_message == "Task timed out after 3.00 seconds"
    assert dl.correlation_id == "0b2e4a1c-5f3d-4c8e-9a7b-1d2e3f4a5b6c"
    assert dl.body_bytes() == b'{"orderId": 42}'


# --- a convention mapped in the connections file ---


def _with_mapping(settings, tmp_path, mapping: dict) -> None:
    """The RabbitMQ connection of the tests, from a connections file that maps its DLQs' fields."""
    spec = settings.BROKERS["rabbitmq"]["default"]
    document = {"rabbitmq": {"default": {"url": spec.url.get_secret_value(), "dead_letters": mapping}}}
    path = tmp_path / "connections.yaml"
    path.write_text(json.dumps(document))  # JSON is YAML
    settings.BROKERS = {**settings.BROKERS, "rabbitmq": connections.load(path, {})["rabbitmq"]}


def test_it_maps_an_in_house_convention_from_the_connections_file(world, destinations, settings, tmp_path):
    origin = destinations("rabbitmq", f"sy-{uuid.uuid4().hex[:10]}")
    dlq = destinations("rabbitmq", origin + ".failed")
    _with_mapping(settings, tmp_path, {"sy-*.failed": {
        "origin": {"header": "x-acme-source-queue"},
        "exception_type": [{"path": "failure.cause.type"}, {"path": "failure.type"}],
        "exception_message": {"path": "failure.message"},
        "stacktrace": {"path": "failure.frames"},
        "message_type": "x-acme-kind",  # a bare name is a header
        "correlation_id": {"path": "meta.trace"},
        "failed_at": {"path": "failure.at"},
        "delivery_count": {"header": "x-acme-tries"},
    }})  # fmt: skip
    body = {
        "payload": {"order": 42},
        "meta": {"trace": "trace-42"},
        "failure": {"type": "AcmeWrapped", "cause": {"type": "acme.StockMissing"}, "message": "no stock",
                    "frames": ["a.py:1", "b.py:2"], "at": 1764670530123},
    }  # fmt: skip
    _amqp_publish(dlq, json.dumps(body).encode(), {"x-acme-source-queue": origin, "x-acme-kind": "OrderPlaced",
                                                   "x-acme-tries": 4})  # fmt: skip
    source = DeadLetterSource.objects.create(broker="rabbitmq", destination=dlq)
    (dl,) = _ingest(source, 1)
    assert dl.convention == "mapped" and dl.origin == origin
    assert (dl.exception_type, dl.exception_message) == ("acme.StockMissing", "no stock")
    assert dl.stacktrace == "a.py:1\nb.py:2" and dl.message_type == "OrderPlaced"
    assert dl.correlation_id == "trace-42" and dl.delivery_count == 4
    assert dl.first_failure_at == datetime(2025, 12, 2, 10, 15, 30, 123000, tzinfo=UTC)
    source.refresh_from_db()
    assert source.convention == "mapped"
    assert _replay(world, dl, "mapped") == origin


def test_it_refuses_a_mapping_that_cannot_work_naming_where(tmp_path):
    path = tmp_path / "connections.yaml"
    path.write_text(
        "rabbitmq:\n  main:\n    url: amqp://guest:guest@localhost/\n    dead_letters:\n"
        "      orders.failed:\n        exception_type: {path: 'failure.[type'}\n"
    )
    with pytest.raises(connections.ConnectionsError, match=r"rabbitmq\.main\.dead_letters\.orders\.failed"):
        connections.load(path, {})
    path.write_text(
        "sqs:\n  main:\n    region: eu-west-1\n    dead_letters:\n"
        "      orders-dlq:\n        origin: {header: x-a, path: a}\n"
    )
    with pytest.raises(connections.ConnectionsError, match="give header or path"):
        connections.load(path, {})


# --- no message breaks it ---


def test_it_stores_letters_whose_convention_headers_are_nonsense(destinations, settings, tmp_path):
    dlq = destinations("rabbitmq", f"sy-{uuid.uuid4().hex[:10]}.broken")
    # A JMESPath that fails on this body at run time (abs of a string): the mapping's problem is named on the letter.
    _with_mapping(settings, tmp_path, {"sy-*.broken": {"delivery_count": {"path": "abs(failure)"}}})
    nonsense = [
        {"kafka_dlt-original-topic": "orders", "kafka_dlt-original-partition": b"\x00\x01\x02",
         "kafka_dlt-original-offset": "soon", "kafka_dlt-exception-fqcn": b"\xff\xfe"},
        {"MT-Fault-ExceptionType": "X", "MT-Fault-Timestamp": "yesterday", "MT-Fault-RetryCount": "many",
         "MT-Fault-InputAddress": 42},
        {"NServiceBus.FailedQ": "", "NServiceBus.TimeOfFailure": "2026-13-45 99:99:99:999999 Z",
         "NServiceBus.ExceptionInfo.StackTrace": "Caused by: " * 10_000},
        {"__connect.errors.partition": "-", "__connect.errors.offset": "9" * 40},
        {"RequestID": "r", "ErrorCode": "", "ErrorMessage": '{"errorType": ["not", "text"]}'},
    ]  # fmt: skip
    for headers in nonsense:
        _amqp_publish(dlq, b'{"failure": "text"}', headers)
    _amqp_publish(dlq, b'{"requestContext": {"condition": 7}, "responsePayload": []}', {})
    source = DeadLetterSource.objects.create(broker="rabbitmq", destination=dlq)
    stored = _ingest(source, len(nonsense) + 1)
    assert len(stored) == len(nonsense) + 1
    spring, mt, nsb, connect, lambda_dlq, record = stored
    assert spring.convention == "spring-kafka" and spring.origin_partition is None and spring.origin_offset is None
    assert mt.first_failure_at is not None and mt.delivery_count is None
    assert nsb.convention == "nservicebus" and len(nsb.exception_type) <= 300
    assert connect.origin_offset is None and lambda_dlq.exception_type == "lambda:error"
    assert record.convention == "lambda-destination" and record.reason == "7"
    assert all("mapping could not be applied" in dl.parse_error for dl in stored)
    assert brokers.get("rabbitmq").queue_depth(dlq).ready == 0


def test_it_recognises_without_raising_whatever_the_headers_and_body():
    """recognise() is what ingest's conversion step calls on every message: any bytes in any header, any body."""
    import random

    from dlq import conventions

    rng = random.Random(12)
    names = sorted(conventions.HEADER_NAMES) + ["x-exception-type", "MT-Reason", "weird\x00name"]
    bodies = [b"", b"{", b"[]", b'{"requestContext": []}', b'{"requestContext": {"functionArn": {}}}',
              b'{"messageType": 5, "message": null}', b"\xff" * 64, json.dumps({"a": [1] * 1000}).encode()]  # fmt: skip
    mapping = {"origin": [{"header": "x"}], "failed_at": [{"path": "a"}], "origin_offset": [{"path": "a[0]"}]}
    for _ in range(3000):
        headers = {
            rng.choice(names): rng.choice([bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 12))), "text", 7,
                                           None, b"Caused by: \n ---> ", struct.pack(">q", -1)])
            for _ in range(rng.randint(0, 8))
        }  # fmt: skip
        found, problems = conventions.recognise(
            headers, rng.choice(bodies), rng.choice(["error", "q_error", "q_skipped", "t.DLT", ""]),
            rng.choice([None, mapping]),
        )  # fmt: skip
        assert found is None or found.convention in conventions.LABELS
        assert all(isinstance(problem, str) for problem in problems)
