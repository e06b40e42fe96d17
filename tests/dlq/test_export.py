"""Exporting the dead letters a filter matches, as JSON lines with headers and bodies (any bytes, base64)."""

import base64
import json

from django.utils import timezone

from dlq.models import DeadLetter, DeadLetterSource


def _letters() -> list[DeadLetter]:
    source = DeadLetterSource.objects.create(broker="kafka", destination="orders.DLQ", origin="orders")
    now = timezone.now()
    bodies = [b'{"order": 1}', b"\xff\xfe<script>alert(1)</script>", b"{}"]
    return [
        DeadLetter.objects.create(
            source=source,
            origin="orders" if i < 2 else "refunds",
            message_id=f"0:{i}",
            headers={"x-exception-type": "Timeout"},
            body=body,
            first_failure_at=now,
            last_failure_at=now,
            fingerprint="fp",
        )
        for i, body in enumerate(bodies)
    ]


def test_it_exports_the_matching_dead_letters_with_their_bytes(world):
    letters = _letters()
    response = world.client(world.viewer).get("/api/v1/dead-letters/export?origin=orders")
    assert response.status_code == 200 and response["Content-Type"] == "application/x-ndjson"
    assert "attachment" in response["Content-Disposition"]
    lines = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert [line["id"] for line in lines] == [letters[0].pk, letters[1].pk]  # oldest first, refunds left out
    assert base64.b64decode(lines[1]["body_base64"]) == b"\xff\xfe<script>alert(1)</script>"
    assert lines[0]["headers"] == {"x-exception-type": "Timeout"}


def test_it_refuses_a_bad_filter_before_exporting_anything(world):
    response = world.client(world.viewer).get("/api/v1/dead-letters/export?since=yesterday-ish")
    assert response.status_code == 400 and "since" in response.json()["fields"]


def test_it_links_the_export_with_the_inbox_filter(world):
    _letters()
    page = world.client(world.viewer).get("/dead-letters/?origin=orders").content.decode()
    assert 'href="/api/v1/dead-letters/export?origin=orders"' in page
    assert world.client(None).get("/api/v1/dead-letters/export").status_code == 401
