"""The rows list's key and event-type filters: real form fields, kept by the live refresh and by the pager."""

import html
import re

from django.db import transaction

from outbox import publish
from outbox.queries import PAGE_SIZE


def _seed(many: int = 3):
    """`many` OrderPaid rows of key order-42 among others of the same key, type or destination."""
    with transaction.atomic():
        wanted = [publish("kafka://orders", "order-42", "OrderPaid", {"i": i}) for i in range(many)]
        publish("kafka://orders", "order-42", "OrderPlaced", {})
        publish("kafka://orders", "order-43", "OrderPaid", {})
    return wanted


def _ids(page: str) -> list[int]:
    return [int(i) for i in re.findall(r'data-testid="event-row" data-id="(\d+)"', page)]


def _attribute(page: str, pattern: str) -> str:
    return html.unescape(re.search(pattern, page).group(1))


def test_it_has_key_and_event_type_fields_filled_from_the_link(db, world):
    _seed()
    page = world.client(world.viewer).get("/outbox/?status=pending&key=order-42&event_type=OrderPaid").content.decode()
    assert re.search(r'<input type="text" name="key" value="order-42"', page)
    assert re.search(r'<input type="text" name="event_type" value="OrderPaid"', page)


def test_it_keeps_the_filters_in_the_live_refresh(db, world):
    wanted = _seed()
    client = world.client(world.viewer)
    page = client.get("/outbox/", {"status": "pending", "key": "order-42", "event_type": "OrderPaid"}).content.decode()
    assert sorted(_ids(page)) == sorted(e.pk for e in wanted)
    live = _attribute(page, r'data-testid="rows-live" hx-get="([^"]+)"')
    assert "key=order-42" in live and "event_type=OrderPaid" in live and "status=pending" in live
    fragment = client.get(live, headers={"HX-Request": "true"}).content.decode()
    assert "<html" not in fragment and sorted(_ids(fragment)) == sorted(e.pk for e in wanted)
    # The fragment re-renders its own refresh URL: it must still carry the filter for the next live update.
    assert _attribute(fragment, r'data-testid="rows-live" hx-get="([^"]+)"') == live


def test_it_keeps_the_filters_in_the_pager(db, world):
    wanted = _seed(many=PAGE_SIZE + 5)
    client = world.client(world.viewer)
    page = client.get("/outbox/", {"status": "pending", "key": "order-42", "event_type": "OrderPaid"}).content.decode()
    first = _ids(page)
    assert len(first) == PAGE_SIZE
    older = _attribute(page, r'<a href="([^"]+)"[^>]*data-testid="older"')
    assert "key=order-42" in older and "event_type=OrderPaid" in older and "before=" in older
    rest = _ids(client.get("/outbox/" + older, headers={"HX-Request": "true"}).content.decode())
    assert sorted(first + rest) == sorted(e.pk for e in wanted)  # the other key's and type's rows never show


def test_it_escapes_filter_values_in_the_refresh_url(db, world):
    _seed()
    hostile = 'x" onmouseover="alert(1)'
    page = world.client(world.viewer).get("/outbox/", {"key": hostile}).content.decode()
    assert 'onmouseover="alert(1)' not in page
    live = _attribute(page, r'data-testid="rows-live" hx-get="([^"]+)"')
    assert "key=x%22+onmouseover%3D%22alert%281%29" in live
    assert _ids(page) == []
