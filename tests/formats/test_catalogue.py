"""The schema catalogue: event types from outbox rows and dead letters with their versions, destinations, producers
and failures; compatibility between consecutive versions and for a pasted schema, breaking fields named; a
dead-letter group whose bodies do not match the current version flagged "schema mismatch"; the outbox refusing an
invalid payload for an event type that opted in."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from django.db import transaction

from brokers.base import Message
from dlq import ingest
from dlq.models import DeadLetter, DeadLetterSource
from formats import catalogue
from formats.validation import SchemaMismatch
from outbox import publish
from tests.formats.conftest import ingest_all
from tests.formats.test_decoding import FAILURE, ORDER_AVRO

T = "acme.OrderPlaced"


def _letter(source, i: int, payload: dict, version: int = 1) -> Message:
    envelope = {"event_id": str(uuid.uuid4()), "event_type": T, "schema_version": version, "payload": payload}
    headers = {
        "x-event-type": T.encode(),
        "x-schema-version": str(version).encode(),
        "x-exception-type": b"app.KeyError",
        "content-type": b"application/json",
    }
    return Message(source.destination, json.dumps(envelope).encode(), None, headers, partition=0, offset=i,
                   timestamp=datetime(2026, 1, 2, tzinfo=UTC))  # fmt: skip


@pytest.fixture
def seen(db):
    """v1 and v2 of acme.OrderPlaced published through the outbox (v2 adds a required currency), and two v1
    bodies dead-lettered by a consumer already on v2."""
    with transaction.atomic():
        for n in range(3):
            publish("kafka://orders", f"o-{n}", T, {"order_id": f"o-{n}", "quantity": n + 1},
                    headers={"x-producer": "checkout"})  # fmt: skip
        for n in range(3):
            publish("kafka://orders", f"o-{n}", T, {"order_id": f"o-{n}", "quantity": n + 1, "currency": "EUR"},
                    schema_version=2, headers={"x-producer": "checkout-v2"})  # fmt: skip
    source = DeadLetterSource.objects.create(broker="kafka", destination="orders.DLQ", origin="orders")
    ingest.store(source, [_letter(source, i, {"order_id": f"x-{i}", "quantity": 1}) for i in range(2)])
    catalogue.refresh()
    return source


def test_it_lists_event_types_with_versions_destinations_producers_and_failures(seen, world):
    client = world.client(world.viewer)
    (t,) = [t for t in client.get("/api/v1/schemas").json()["schemas"] if t["event_type"] == T]
    assert t["versions"] == ["1", "2"] and t["current"] == "2"
    assert t["seen"] == 6 and t["failed"] == 2
    assert "kafka://orders" in t["destinations"] and "kafka:default/orders" in t["destinations"]
    assert t["producers"] == ["checkout", "checkout-v2"]
    page = client.get("/schemas/").content.decode()
    assert T in page and "1 mismatched group" in page
    rows = client.get("/schemas/", headers={"HX-Request": "true"}).content.decode()  # the page's 15 s refresh
    assert T in rows and "<html" not in rows


def test_it_names_the_breaking_fields_between_consecutive_versions(seen, world):
    body = world.client(world.viewer).get(f"/api/v1/schemas/{T}").json()
    v1, v2 = body["versions"]
    assert v1["schema"]["required"] == ["order_id", "quantity"]  # inferred from the published payloads only
    assert v2["previous"] == "1"
    (breaking,) = v2["compatibility"]["backward"]
    assert breaking["field"] == "currency" and "required by the new version" in breaking["why"]
    assert v2["compatibility"]["forward"] == []
    assert [b["field"] for b in v2["compatibility"]["full"]] == ["currency"]


def test_it_checks_a_pasted_schema_against_the_current_version(seen, world):
    client = world.client(world.operator)
    pasted = {
        "type": "object",
        "properties": {"order_id": {"type": "integer"}, "currency": {"type": "string"}},
        "required": ["order_id", "currency"],
    }
    r = client.post(f"/api/v1/schemas/{T}/compatibility", {"schema": pasted, "kind": "json-schema", "mode": "full"},
                    content_type="application/json")  # fmt: skip
    assert r.status_code == 200, r.content
    fields = {b["field"]: b["why"] for b in r.json()["breaking"]}
    assert not r.json()["compatible"]
    assert "order_id" in fields and "quantity" in fields  # a type changed; a required field dropped (forward)
    bad = client.post(f"/api/v1/schemas/{T}/compatibility", {"schema": "{nope", "kind": "json-schema"},
                      content_type="application/json")  # fmt: skip
    assert bad.status_code == 400 and "schema" in bad.json()["fields"]
    page = client.post(f"/schemas/{T}/", {"schema": json.dumps(pasted), "kind": "json-schema", "mode": "backward"})
    assert 'data-testid="compatibility-result"' in page.content.decode()


def test_it_flags_a_dead_letter_group_whose_bodies_do_not_match_the_current_version(seen, world):
    (group,) = DeadLetter.objects.filter(source=seen).values_list("fingerprint", flat=True).distinct()
    body = world.client(world.viewer).get(f"/api/v1/schemas/{T}").json()
    (mismatch,) = body["mismatched_groups"]
    assert mismatch["group"] == group and mismatch["version"] == "2"
    assert mismatch["fields"] == [{"field": "currency", "why": "missing; the current version requires it"}]
    page = world.client(world.viewer).get("/dead-letters/groups/").content.decode()
    assert 'data-testid="schema-mismatch"' in page and "schema mismatch: currency" in page
    (api_group,) = world.client(world.viewer).get("/api/v1/dead-letter-groups").json()["groups"]
    assert api_group["schema_mismatch"]["fields"][0]["field"] == "currency"

    # Bodies that match the current version clear the flag.
    ingest.store(
        seen, [_letter(seen, 10 + i, {"order_id": "y", "quantity": 1, "currency": "EUR"}, 2) for i in range(2)]
    )
    catalogue.refresh()
    assert world.client(world.viewer).get(f"/api/v1/schemas/{T}").json()["mismatched_groups"] == []


@pytest.mark.django_db(transaction=True)
def test_it_refuses_an_outbox_payload_the_registered_schema_rejects(dlq_topic, produce, producer_client, settings):
    ctx = SerializationContext(dlq_topic, MessageField.VALUE)
    body = AvroSerializer(producer_client, ORDER_AVRO)(
        {"order_id": "o", "quantity": 1, "note": None, "signature": b""}, ctx
    )
    produce(dlq_topic, body, FAILURE)
    ingest_all(DeadLetterSource.objects.create(broker="kafka", destination=dlq_topic), 1)
    catalogue.refresh()
    (version,) = catalogue.consecutive("acme.orders.OrderPlaced")
    assert version["version"].kind == "avro" and version["version"].registry_id is not None

    with transaction.atomic():  # not opted in: anything goes
        publish("kafka://orders", "k", "acme.orders.OrderPlaced", {"order_id": 5})
    settings.OUTBOX_VALIDATE_TYPES = ["acme.orders.OrderPlaced"]
    with pytest.raises(SchemaMismatch) as refused, transaction.atomic():
        publish(
            "kafka://orders", "k", "acme.orders.OrderPlaced", {"order_id": "o-1", "quantity": "many", "signature": ""}
        )
    assert "quantity" in refused.value.errors
    with transaction.atomic():
        publish("kafka://orders", "k", "acme.orders.OrderPlaced",
                {"order_id": "o-1", "quantity": 2, "note": None, "signature": "AAE="})  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_it_compares_protobuf_versions_from_the_registry(dlq_topic, produce, producer_client):
    from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
    from google.protobuf import descriptor_pb2, descriptor_pool
    from google.protobuf.message_factory import GetMessageClass

    def version(days_type: int):
        file = descriptor_pb2.FileDescriptorProto(name="acme/parcel.proto", package="acme", syntax="proto3")
        msg = file.message_type.add(name="ParcelLost")
        msg.field.add(name="parcel_id", number=1, type=9, label=1)
        msg.field.add(name="days", number=2, type=days_type, label=1)
        pool = descriptor_pool.DescriptorPool()
        pool.Add(file)
        return GetMessageClass(pool.FindMessageTypeByName("acme.ParcelLost"))

    ctx = SerializationContext(dlq_topic, MessageField.VALUE)
    v1, v2 = version(5), version(9)  # days: int32, then string
    conf = {"use.deprecated.format": False}
    produce(dlq_topic, ProtobufSerializer(v1, producer_client, conf)(v1(parcel_id="p", days=3), ctx), {"n": b"1"})
    produce(dlq_topic, ProtobufSerializer(v2, producer_client, conf)(v2(parcel_id="p", days="3"), ctx), {"n": b"2"})
    ingest_all(DeadLetterSource.objects.create(broker="kafka", destination=dlq_topic), 2)
    catalogue.refresh()

    first, second = catalogue.consecutive("acme.ParcelLost")
    assert (first["version"].kind, second["version"].version) == ("protobuf", "2")
    (breaking,) = second["checks"]["backward"]
    assert breaking["field"] == "days" and "does not accept integer" in breaking["why"]


def test_it_flags_groups_on_the_page_in_one_query(seen, world):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from formats.models import GroupMismatch

    client = world.client(world.viewer)

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get("/dead-letters/groups/").status_code == 200
        return len(ctx.captured_queries)

    before = count()
    for n in range(3):  # three more flagged groups
        dl = ingest.store(seen, [_letter(seen, 100 + n, {"order_id": "z"})])[0]
        DeadLetter.objects.filter(pk=dl.pk).update(fingerprint=f"extra-{n}", exception_type=f"E{n}")
        GroupMismatch.objects.create(
            fingerprint=f"extra-{n}", event_type=T, version="2", fields=[], checked_at=dl.ingested_at
        )
    page = client.get("/dead-letters/groups/").content.decode()
    assert page.count('data-testid="schema-mismatch"') == 4
    assert count() == before


@pytest.mark.django_db(transaction=True)
def test_it_skips_a_refresh_while_another_holds_the_cursors():
    import threading

    from formats.models import Cursor

    catalogue.refresh()  # the cursors exist
    held, done = threading.Event(), threading.Event()

    def hold():
        from django.db import connection

        with transaction.atomic():
            list(Cursor.objects.select_for_update())
            held.set()
            done.wait(10)
        connection.close()

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(10)
    try:
        assert catalogue.refresh().get("skipped") is True
    finally:
        done.set()
        thread.join()
    assert "skipped" not in catalogue.refresh()


def test_it_refreshes_from_the_beat_task(db):
    from formats.tasks import refresh_catalogue

    with transaction.atomic():
        publish("sqs://billing", "b", "acme.InvoiceSent", {"invoice": "i-1"})
    assert refresh_catalogue()["outbox"] == 1
    assert catalogue.current("acme.InvoiceSent").schema["required"] == ["invoice"]
    assert refresh_catalogue()["outbox"] == 0  # read from where it stopped
