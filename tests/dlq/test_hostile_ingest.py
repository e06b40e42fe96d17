"""Hostile messages on each broker's DLQ, put there as foreign publishers write them (with the brokers' own clients, or
the raw protocol where no client would write them), ingested by the real `manage.py dlq_ingest` worker: every one is
stored with the bytes that were sent, what could not be read is named on the letter, and the worker is still running
afterwards (and stops cleanly on SIGTERM)."""

from __future__ import annotations

import datetime
import decimal
import json
import signal
import socket
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import amqp
import boto3
import pytest
from confluent_kafka import Producer
from django.conf import settings

from console import brokers
from dlq.models import DeadLetter, DeadLetterSource
from tests.dlq import procs

pytestmark = pytest.mark.django_db(transaction=True)

TEN_MB = bytes(range(256)) * 40960  # 10 MiB, every byte value


@contextmanager
def ingest_worker(tmp_path: Path, *sources: DeadLetterSource, extra_env: dict[str, str] | None = None):
    log = tmp_path / "ingest.log"
    ids = [arg for source in sources for arg in ("--source", str(source.pk))]
    worker = procs.manage("dlq_ingest", "--no-discovery", *ids, "--batch", "20", log=log, extra_env=extra_env)
    try:
        yield worker, log
        assert worker.poll() is None, f"the worker exited ({worker.returncode}):\n{log.read_text()[-5000:]}"
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(20) == 0, log.read_text()[-5000:]
    finally:
        procs.kill(worker)


def wait_stored(source: DeadLetterSource, n: int, worker, log: Path, seconds: float = 90) -> dict[str, DeadLetter]:
    """The source's dead letters by message id once there are n, failing at once if the worker dies."""
    deadline = time.monotonic() + seconds
    while True:
        stored = {dl.message_id: dl for dl in DeadLetter.objects.filter(source=source)}
        if len(stored) >= n:
            return stored
        if worker.poll() is not None:
            raise AssertionError(f"the worker exited ({worker.returncode}):\n{log.read_text()[-5000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(stored)} of {n} stored after {seconds} s:\n{log.read_text()[-5000:]}")
        time.sleep(0.2)


def test_it_ingests_hostile_rabbitmq_messages_and_keeps_running(destinations, tmp_path):
    queue = destinations("rabbitmq", f"sy-{uuid.uuid4().hex[:10]}-dlq")
    table = {
        "nested": [1, [2, "three", [b"\xff"]], {"t": {"deep": decimal.Decimal("1.25")}}],
        "dec": decimal.Decimal("3.14"),
        "when": datetime.datetime(2024, 1, 2, 3, 4, 5),
        "nothing": None,
        "yes": True,
        "bin": b"\xff\x00\xfe",
        "x-delivery-count": "banana",  # a publisher's own, not a number
    }
    sent = [
        # A Python publisher's text body: py-amqp hands it to a consumer as str (TypeError on the code before).
        (b'{"greeting": "h\xc3\xa9llo"}', {"content_encoding": "utf-8", "content_type": "application/json"}),
        (b"caf\xe9 latin-1", {"content_encoding": "latin-1"}),
        (b"x", {"application_headers": table}),
        (b"", {}),  # AMQP has no null body: an empty one is the nearest
        (TEN_MB, {}),
        (b"y", {"message_id": b"\xff\xfe\x00id"}),  # a short string that is not UTF-8: py-amqp could not decode it
        (b"z", {"timestamp": 2**62}),  # no datetime holds it
        (b"after them all", {}),
    ]
    connection = amqp.Connection("127.0.0.1:5672", userid="guest", password="guest")
    connection.connect()
    channel = connection.channel()
    for n, (body, properties) in enumerate(sent):
        headers = {**properties.pop("application_headers", {}), "n": str(n)}
        channel.basic_publish(amqp.Message(body, application_headers=headers, **properties), "", queue)
    connection.close()
    source = DeadLetterSource.objects.create(broker="rabbitmq", destination=queue, origin="orders")

    with ingest_worker(tmp_path, source) as (worker, log):
        stored = wait_stored(source, len(sent), worker, log)
        time.sleep(1)  # a few more rounds with nothing to read: still running

    by_n = {dl.headers["n"]: dl for dl in stored.values()}
    assert sorted(by_n) == sorted(str(n) for n in range(len(sent)))
    for n, (body, _) in enumerate(sent):
        assert by_n[str(n)].body_bytes() == body, n
    assert by_n["4"].body_size == len(TEN_MB)
    headers = by_n["2"].header_bytes()
    assert json.loads(headers["nested"]) == [1, [2, "three", [{"base64": "/w=="}]], {"t": {"deep": "1.25"}}]
    assert (headers["dec"], headers["when"]) == (b"3.14", b"2024-01-02T03:04:05+00:00")
    assert (headers["nothing"], headers["yes"], headers["bin"]) == (b"", b"true", b"\xff\x00\xfe")
    assert headers["x-delivery-count"] == b"banana" and by_n["2"].delivery_count is None
    assert "message_id is not UTF-8" in by_n["5"].parse_error
    assert by_n["5"].message_id.startswith("sha256:")  # PostgreSQL text cannot hold its NUL: a digest of it
    assert all(not by_n[str(n)].parse_error for n in (0, 1, 2, 3, 4, 6, 7))
    assert not DeadLetterSource.objects.get(pk=source.pk).last_error
    assert brokers.get("rabbitmq").queue_depth(queue).ready == 0  # every one acked, after its commit


def test_it_ingests_hostile_kafka_records_and_keeps_running(destinations, tmp_path):
    # noida-db's topics default to max.message.bytes 1048588 ("Broker: Message size too large" for 10 MB), and
    # librdkafka's producer to message.max.bytes 1000000: both are raised for this topic and producer.
    topic = destinations("kafka", f"sy-{uuid.uuid4().hex[:10]}.DLQ", **{"max.message.bytes": 16_000_000})
    producer = Producer(
        {
            "bootstrap.servers": ",".join(settings.BROKERS["kafka"]["default"].bootstrap_servers),
            "message.max.bytes": 16_000_000,
        }
    )
    sent = [
        {"value": None, "key": b"gone-key"},  # a tombstone
        {"value": b"no key", "key": None},
        {"value": b"", "key": b"empty"},
        {"value": "h\u00e9llo, \u4e16\u754c", "key": "text key"},  # text: the client sends UTF-8
        {"value": b"h", "headers": [("bin", b"\xff\xfe\x00"), ("none", None), ("text", "\u00e9t\u00e9")]},
        {"value": b"t", "timestamp": 2**62},  # CreateTime no datetime holds (the code before crashed on it)
        {"value": TEN_MB},
        {"value": b"after them all"},
    ]
    reports = []
    for record in sent:
        producer.produce(topic, on_delivery=lambda err, msg: reports.append(err), **record)
    producer.flush(60)
    assert reports == [None] * len(sent)
    source = DeadLetterSource.objects.create(broker="kafka", destination=topic, origin="orders")

    with ingest_worker(tmp_path, source) as (worker, log):
        stored = wait_stored(source, len(sent), worker, log)
        time.sleep(1)

    by_offset = {dl.offset: dl for dl in stored.values()}
    assert sorted(by_offset) == list(range(len(sent)))
    expected = [b"", b"no key", b"", "h\u00e9llo, \u4e16\u754c".encode(), b"h", b"t", TEN_MB, b"after them all"]
    assert [by_offset[i].body_bytes() for i in range(len(sent))] == expected
    assert [by_offset[i].key_bytes() for i in range(4)] == [b"gone-key", None, b"empty", b"text key"]
    headers = by_offset[4].header_bytes()
    assert (headers["bin"], headers["none"], headers["text"]) == (b"\xff\xfe\x00", b"", "\u00e9t\u00e9".encode())
    assert "timestamp" in by_offset[5].parse_error
    assert all(not by_offset[i].parse_error for i in (0, 1, 2, 3, 4, 6, 7))


def _sqs_client():
    config = settings.BROKERS["sqs"]["default"]
    return boto3.client(
        "sqs",
        endpoint_url=config.endpoint_url,
        region_name=config.region,
        aws_access_key_id=config.access_key_id,
        aws_secret_access_key=config.secret_access_key.get_secret_value(),
    )


def test_it_ingests_hostile_sqs_messages_and_keeps_running(destinations, tmp_path):
    queue = destinations("sqs", f"sy-{uuid.uuid4().hex[:10]}-dlq")
    client = _sqs_client()
    url = client.get_queue_url(QueueName=queue)["QueueUrl"]
    binary = {"DataType": "Binary", "BinaryValue": b"\xff\xfe\x00"}
    # SQS refuses an empty body (at least one character) and any body over 256 KiB, attributes included, so neither
    # an empty nor a 10 MB message can be on an SQS DLQ; the largest it takes is sent instead.
    largest = "L" * (256 * 1024 - 100)
    sent = [
        ("h\u00e9llo \u4e16\u754c \U0001f600\r\n\ttabs", {}),
        ("attrs", {"bin": binary, "text": {"DataType": "String", "StringValue": "\u00e9t\u00e9"}}),
        ("42", {"num": {"DataType": "Number", "StringValue": "42.5"}, "gz": {**binary, "DataType": "Binary.gzip"}}),
        # Another publisher's attribute of the name the adapter uses for binary bodies (the code before crashed).
        ("not base64 at all!", {"x-body-encoding": {"DataType": "String", "StringValue": "base64"}}),
        (largest, {}),
        ("after them all", {}),
    ]
    for n, (body, attributes) in enumerate(sent):
        attributes = {**attributes, "n": {"DataType": "String", "StringValue": str(n)}}
        client.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=attributes)
    source = DeadLetterSource.objects.create(
        broker="sqs", destination=queue, origin="orders", conventions={"visibility_timeout": 5}
    )

    with ingest_worker(tmp_path, source) as (worker, log):
        stored = wait_stored(source, len(sent), worker, log)
        time.sleep(1)

    by_n = {dl.headers["n"]: dl for dl in stored.values()}
    assert [by_n[str(n)].body_bytes() for n in range(len(sent))] == [body.encode() for body, _ in sent]
    assert by_n["1"].header_bytes()["bin"] == b"\xff\xfe\x00" and by_n["1"].headers["text"] == "\u00e9t\u00e9"
    assert by_n["2"].headers["num"] == "42.5" and by_n["2"].header_bytes()["gz"] == b"\xff\xfe\x00"
    assert "not base64" in by_n["3"].parse_error or "base64" in by_n["3"].parse_error
    assert all(not by_n[str(n)].parse_error for n in (0, 1, 2, 4, 5))


def _nats_raw(payloads: list[bytes]) -> bytes:
    """Send raw NATS protocol lines on a fresh connection (headers on) and return what the server answered."""
    with socket.create_connection(_nats_address(), timeout=10) as s:
        s.recv(4096)  # INFO
        s.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\n')
        for payload in payloads:
            s.sendall(payload)
        s.sendall(b"PING\r\n")
        answer = b""
        while b"PONG" not in answer and b"-ERR" not in answer:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer


def _nats_address() -> tuple[str, int]:
    host, port = settings.BROKERS["nats"]["default"].servers[0].rpartition("/")[2].rsplit(":", 1)
    return host, int(port)


def _nats_info() -> dict:
    with socket.create_connection(_nats_address(), timeout=10) as s:
        return json.loads(s.recv(4096).split(b" ", 1)[1])


def _hpub(subject: str, block: bytes, body: bytes) -> bytes:
    return b"HPUB %s %d %d\r\n%s%s\r\n" % (subject.encode(), len(block), len(block) + len(body), block, body)


def test_it_ingests_hostile_nats_messages_and_keeps_running(destinations, tmp_path):
    stream = destinations("nats", f"SY-{uuid.uuid4().hex[:10]}-DLQ")
    nats = brokers.get("nats")
    # The server's max_payload (1 MiB by default, and on the machine's NATS) refuses a 10 MB message outright, as soon
    # as it reads the size; the largest it takes is sent instead.
    assert b"Maximum Payload Violation" in _nats_raw([b"PUB %s %d\r\n" % (stream.encode(), len(TEN_MB))])
    largest = _nats_info()["max_payload"] - 1024
    sent = [
        # Header blocks with status lines: what the server itself sends as "no responders", "request timeout" ...
        (b"NATS/1.0 503\r\n\r\n", b""),
        (b"NATS/1.0 408 Request Timeout\r\nn: 1\r\n\r\n", b""),
        (b"NATS/1.0 404 No Messages\r\nn: 2\r\n\r\n", b"a body all the same"),
        (b"NATS/1.0 100 Idle Heartbeat\r\n\r\n", b""),
        (b"NATS/1.0 503 \xff\xfe\r\n\r\n", b"status text not UTF-8"),  # nats-py's reader raised on it
        (b"NATS/1.0\r\nbin: \xff\xfe\x00x\r\n\r\n", b"binary header"),
        (b"NATS/1.0\r\nno colon here\r\n\xffname: v\r\n\r\n", b"malformed lines"),
        (None, b""),  # no headers, empty body
        (None, "h\u00e9llo \u4e16\u754c".encode()),
        (None, bytes(range(256)) * (largest // 256)),
        (b"NATS/1.0\r\nok: fine\r\n\r\n", b"after them all"),
    ]
    frames = [
        _hpub(stream, block, body) if block else b"PUB %s %d\r\n%s\r\n" % (stream.encode(), len(body), body)
        for block, body in sent
    ]
    assert b"-ERR" not in _nats_raw(frames)
    source = DeadLetterSource.objects.create(broker="nats", destination=stream, origin="orders")

    with ingest_worker(tmp_path, source) as (worker, log):
        stored = wait_stored(source, len(sent), worker, log)
        time.sleep(1)

    by_seq = {int(mid): dl for mid, dl in stored.items()}
    assert sorted(by_seq) == list(range(1, len(sent) + 1))
    assert [by_seq[i + 1].body_bytes() for i in range(len(sent))] == [body for _, body in sent]
    assert by_seq[1].headers == {"Status": "503"}
    assert by_seq[2].headers == {"Status": "408", "Description": "Request Timeout", "n": "1"}
    assert by_seq[5].header_bytes() == {"Status": b"503", "Description": b"\xff\xfe"}
    assert by_seq[6].header_bytes() == {"bin": b"\xff\xfe\x00x"}
    assert "without a name" in by_seq[7].parse_error and "not UTF-8" in by_seq[7].parse_error
    assert by_seq[7].headers == {"\\xffname": "v"}
    assert all(not by_seq[i].parse_error for i in range(1, len(sent) + 1) if i != 7)
    assert nats.consumer_info(stream)[0].ack_pending == 0  # every one acked, after its commit


def test_it_keeps_ingesting_while_a_source_is_gone_and_takes_it_back(world, destinations, tmp_path):
    rabbitmq = brokers.get("rabbitmq")
    doomed = destinations("rabbitmq", f"sy-{uuid.uuid4().hex[:10]}-dlq")
    healthy = destinations("rabbitmq", f"sy-{uuid.uuid4().hex[:10]}-dlq")
    gone = DeadLetterSource.objects.create(broker="rabbitmq", destination=doomed)
    other = DeadLetterSource.objects.create(broker="rabbitmq", destination=healthy)
    rabbitmq.delete_destination(doomed)
    fast = {"DLQ_SOURCE_BACKOFF_MAX_SECONDS": "2", "DLQ_INGEST_IDLE_SECONDS": "0"}

    with ingest_worker(tmp_path, gone, other, extra_env=fast) as (worker, log):
        for n in range(3):
            rabbitmq.publish(healthy, f"healthy {n}".encode(), headers={"x-exception-type": "ValueError"})
        wait_stored(other, 3, worker, log)
        _wait(lambda: DeadLetterSource.objects.get(pk=gone.pk).gone_since is not None, worker, log)
        time.sleep(6)  # several backoff rounds while it is gone
        page = world.client(world.viewer).get("/dead-letters/sources/").content.decode()
        assert "gone since" in page and "NOT_FOUND" in page
        assert log.read_text().count("the DLQ is gone") == 1  # once, not every round
        failures = DeadLetterSource.objects.get(pk=gone.pk).consecutive_failures
        assert failures >= 2  # polled again and again, with a backoff between
        rabbitmq.ensure_destination(doomed)
        rabbitmq.publish(doomed, b"back again", headers={"x-exception-type": "ValueError"})
        wait_stored(gone, 1, worker, log, seconds=30)
        rabbitmq.publish(healthy, b"healthy 3")
        wait_stored(other, 4, worker, log)

    back = DeadLetterSource.objects.get(pk=gone.pk)
    assert back.gone_since is None and back.last_error == "" and back.consecutive_failures == 0
    assert DeadLetter.objects.get(source=gone).body_bytes() == b"back again"
    assert "the DLQ is back" in log.read_text()
    page = world.client(world.viewer).get("/dead-letters/sources/").content.decode()
    assert "gone since" not in page


def _wait(check, worker, log, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if worker.poll() is not None:
            raise AssertionError(f"the worker exited ({worker.returncode}):\n{log.read_text()[-5000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {seconds} s:\n{log.read_text()[-5000:]}")
        time.sleep(0.1)
