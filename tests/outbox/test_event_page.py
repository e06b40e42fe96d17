"""One outbox event: its page (linked from the rows list and the trace) and GET /api/v1/outbox/events/<id>."""

import base64
import hashlib

from django.db import transaction
from django.utils import timezone

from outbox import publish
from outbox.models import OutboxEvent

HOSTILE = "<script>alert(1)</script>"


def test_it_shows_the_envelope_headers_and_pretty_json_payload(db, world):
    with transaction.atomic():
        event = publish(
            "kafka://orders",
            "order-42",
            "OrderPaid",
            {"total": 12, "items": ["a"]},
            headers={"x-tenant": "acme"},
            correlation_id="ORD-42",
            schema_version=3,
        )
    now = timezone.now()
    OutboxEvent.objects.filter(pk=event.pk).update(status="published", published_at=now, latency_ms=12.34)
    page = world.client(world.viewer).get(f"/outbox/events/{event.pk}/").content.decode()
    assert str(event.event_id) in page and "OrderPaid v3" in page and "kafka://orders" in page
    assert 'data-testid="status">published<' in page and "12.3 ms" in page
    assert '<td class="mono">x-tenant</td><td class="mono">acme</td>' in page
    assert f'<td class="mono">x-event-id</td><td class="mono">{event.event_id}</td>' in page
    assert '<pre class="body" data-testid="payload-json">{\n  &quot;total&quot;: 12,' in page
    assert '<a href="/trace/?correlation=ORD-42" data-testid="trace-link">ORD-42</a>' in page


def test_it_escapes_a_hostile_event_and_shows_invalid_utf8_as_hex(db, world):
    with transaction.atomic():
        event = publish(
            "kafka://orders",
            HOSTILE,
            HOSTILE,
            HOSTILE.encode() + b"\xff\xfe\x00",
            headers={HOSTILE: HOSTILE},
            correlation_id=HOSTILE,
        )
    OutboxEvent.objects.filter(pk=event.pk).update(status="failed", attempts=8, last_error=HOSTILE)
    page = world.client(world.viewer).get(f"/outbox/events/{event.pk}/").content.decode()
    assert HOSTILE not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'data-testid="payload-hex"' in page and "3c 73 63 72 69 70 74 3e" in page and "ff fe 00" in page
    assert "  &lt;script&gt;alert(1)\n" in page.split('data-testid="payload-hex"')[1]  # the printable column


def test_it_escapes_a_json_payload_carrying_markup(db, world):
    with transaction.atomic():
        event = publish("kafka://orders", "k", "t", {"note": HOSTILE})
    page = world.client(world.viewer).get(f"/outbox/events/{event.pk}/").content.decode()
    assert HOSTILE not in page and "&quot;note&quot;: &quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;" in page


def test_it_shows_a_claim_check_payload_from_its_table(db, world, settings):
    settings.OUTBOX_CLAIM_CHECK_BYTES = 64
    text = "line of text " * 20
    with transaction.atomic():
        event = publish("kafka://orders", "k", "big", text.encode())
    assert event.claim_check_id is not None and event.payload is None
    page = world.client(world.viewer).get(f"/outbox/events/{event.pk}/").content.decode()
    assert f"outbox-payload:{event.claim_check_id}" in page
    assert hashlib.sha256(text.encode()).hexdigest() in page
    assert f'data-testid="payload-text">{text}</pre>' in page


def test_it_answers_404_for_a_missing_event(db, world):
    client = world.client(world.viewer)
    assert client.get("/outbox/events/999999/").status_code == 404
    missing = client.get("/api/v1/outbox/events/999999")
    assert missing.status_code == 404 and missing.json()["error"] == "no such outbox row"
    assert world.client(world.outsider).get("/outbox/events/1/").status_code == 403


def test_it_links_the_rows_list_and_the_trace_to_the_event(db, world):
    with transaction.atomic():
        event = publish("kafka://orders", "k", "OrderPlaced", {}, correlation_id="ORD-7")
    client = world.client(world.viewer)
    rows = client.get("/outbox/", {"status": "pending"}).content.decode()
    assert f'<a href="/outbox/events/{event.pk}/" data-testid="event-link">' in rows
    trace = client.get("/trace/", {"correlation": "ORD-7"}).content.decode()
    assert f'<a href="/outbox/events/{event.pk}/">{event.event_id}</a>' in trace
    api = client.get("/api/v1/trace", {"correlation": "ORD-7"}).json()
    [outbox] = [s for s in api["sections"] if s["name"] == "outbox"]
    assert outbox["rows"][0]["href"] == f"/outbox/events/{event.pk}/"


def test_it_serves_an_event_with_its_payload_through_the_api(db, world, settings):
    settings.OUTBOX_CLAIM_CHECK_BYTES = 64
    with transaction.atomic():
        as_json = publish("kafka://orders", "k", "t", {"note": HOSTILE}, headers={"x-a": "1"})
        as_bytes = publish("kafka://orders", "k", "t", b"\xff\x00raw")
        big = publish("kafka://orders", "k", "t", b"x" * 100)
    client = world.client(world.viewer)
    body = client.get(f"/api/v1/outbox/events/{as_json.pk}").json()
    assert body["payload"] == {"note": HOSTILE} and body["encoding"] == "json"
    assert body["headers"]["x-a"] == "1" and body["headers"]["x-event-id"] == str(as_json.event_id)
    assert (body["id"], body["status"], body["destination"]) == (as_json.pk, "pending", "kafka://orders")
    raw = client.get(f"/api/v1/outbox/events/{as_bytes.pk}").json()
    assert base64.b64decode(raw["payload_base64"]) == b"\xff\x00raw" and "payload" not in raw
    ref = client.get(f"/api/v1/outbox/events/{big.pk}").json()["payload_ref"]
    assert ref["size"] == 100 and ref["sha256"] == hashlib.sha256(b"x" * 100).hexdigest()
    assert client.get(ref["url"]).content == b"x" * 100


def test_it_shows_the_start_of_a_large_payload_as_text_even_when_the_cut_splits_a_character(db, world, settings):
    settings.OUTBOX_CLAIM_CHECK_BYTES = 1024
    data = ("aé" * 100_000).encode()  # 3 bytes a pair: the 256 KB cut falls inside an "é"
    with transaction.atomic():
        event = publish("kafka://orders", "k", "big", data)
    page = world.client(world.viewer).get(f"/outbox/events/{event.pk}/").content.decode()
    assert "first 256 KB shown" in page and 'data-testid="payload-text">aéaé' in page
