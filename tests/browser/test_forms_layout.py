"""Forms that read top to bottom at 1280 and 1920 px: the edit & replay form (wide body, button under it, not beside),
the groups page (one line of actions per group), the inbox and saga filters (one band, no horizontal scroll).
Screenshots of each go to .artifacts/screenshots/ for a person to look at."""

from pathlib import Path

import pytest
from django.utils import timezone

from dlq.models import DeadLetter, DeadLetterSource
from sagas.recording import record_events, validate_event
from tests.conftest import login
from tests.sagas.helpers import ev

pytestmark = pytest.mark.browser
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".artifacts" / "screenshots"
WIDTHS = (1280, 1920)


def _seed() -> DeadLetter:
    source = DeadLetterSource.objects.create(broker="kafka", destination="layout-orders.DLQ")
    now = timezone.now()
    letters = []
    for i, (exception, message_type) in enumerate(
        [
            ("com.example.orders.InvalidPostcodeException", "com.example.orders.OrderPlaced"),
            ("KeyError: 'customer_id'", "order.created.v2"),
            ("TimeoutError: warehouse did not answer within 30 s", "shipment.requested"),
        ]
    ):
        for j in range(3):
            letters.append(
                DeadLetter.objects.create(
                    source=source, origin="layout-orders", message_id=f"{i}:{j}",
                    body=b'{"order": 42, "customer_id": null, "lines": [{"sku": "A-1", "qty": 2}]}',
                    body_text='{"order": 42, "customer_id": null, "lines": [{"sku": "A-1", "qty": 2}]}',
                    first_failure_at=now, last_failure_at=now, fingerprint=f"layout-{i}",
                    exception_type=exception, message_type=message_type, content_type="application/json",
                )
            )  # fmt: skip
    record_events([validate_event(ev("layout-1", "charge", status="failed", seq=1, correlation_id="ORD-1"))[0]])
    return letters[0]


def _no_horizontal_scroll(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), "the page scrolls sideways"


def _lines(boxes: list[dict]) -> int:
    """How many lines the boxes sit on (a checkbox sits a few pixels off its line's text inputs)."""
    tops = sorted(b["y"] for b in boxes)
    return 1 + sum(1 for a, b in zip(tops, tops[1:], strict=False) if b - a > 20) if tops else 0


def _box(page, selector: str) -> dict:
    box = page.locator(selector).first.bounding_box()
    assert box is not None, selector
    return box


@pytest.mark.parametrize("width", WIDTHS)
def test_it_lays_out_the_edit_and_replay_form_top_to_bottom(transactional_db, world, live_console, page, width):
    letter = _seed()
    page.set_viewport_size({"width": width, "height": 1000})
    login(page, live_console, "operator")
    page.goto(f"{live_console.url}/dead-letters/{letter.pk}/")
    page.screenshot(path=str(SCREENSHOTS / f"edit-replay-{width}.png"), full_page=True)
    form = _box(page, "[data-testid=edit-replay-form]")
    body = _box(page, "[data-testid=edit-replay-form] textarea[name=body]")
    button = _box(page, "[data-testid=edit-replay-form] button[type=submit]")
    main = _box(page, "main")
    assert body["width"] >= 0.6 * main["width"] - 40, (body, main)  # the body reads at the page's width
    assert button["y"] > body["y"] + body["height"]  # under the fields, not beside them
    assert button["width"] < 0.5 * form["width"]  # a button, not a bar
    _no_horizontal_scroll(page)


@pytest.mark.parametrize("width", WIDTHS)
def test_it_keeps_each_groups_actions_on_one_line(transactional_db, world, live_console, page, width):
    _seed()
    page.set_viewport_size({"width": width, "height": 900})
    login(page, live_console, "operator")
    page.goto(f"{live_console.url}/dead-letters/groups/")
    page.screenshot(path=str(SCREENSHOTS / f"dlq-groups-{width}.png"), full_page=True)
    rows = page.locator("[data-testid=group-row]")
    assert rows.count() == 3
    for i in range(3):
        row = rows.nth(i).bounding_box()
        assert row["height"] <= 64, f"group row {i} is {row['height']} px tall: its actions wrap"
        replay = rows.nth(i).locator("[data-testid=group-replay] button").bounding_box()
        discard = rows.nth(i).locator("[data-testid=group-status] button.danger").bounding_box()
        assert abs(replay["y"] - discard["y"]) < 8  # the actions side by side
    _no_horizontal_scroll(page)


@pytest.mark.parametrize("width", WIDTHS)
def test_it_fits_the_list_filters_in_the_page(transactional_db, world, live_console, page, width):
    _seed()
    page.set_viewport_size({"width": width, "height": 900})
    login(page, live_console, "operator")
    for path, name in (("/dead-letters/", "dlq-inbox"), ("/sagas/", "sagas-list")):
        page.goto(f"{live_console.url}{path}")
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
        _no_horizontal_scroll(page)
        filters = page.locator("form.filters").first
        fields = filters.locator("input:visible, select:visible")
        lines = _lines([fields.nth(i).bounding_box() for i in range(fields.count())])
        assert lines <= (3 if width == 1280 else 2), f"{path}: filters spread over {lines} lines at {width}"
