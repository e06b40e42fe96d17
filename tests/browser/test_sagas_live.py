"""The open list shows sagas recorded through the API without a reload (matching its filter), holds them while
paused; the open timeline shows events arriving for its saga."""

import pytest
import requests
from playwright.sync_api import expect

from tests.conftest import login, wait_for_js
from tests.sagas.helpers import ev

pytestmark = pytest.mark.browser

WS_OPEN = "window.wsOpen = false; document.addEventListener('htmx:wsOpen', () => { window.wsOpen = true })"


def _post(live_console, token: str, body) -> None:
    response = requests.post(
        f"{live_console.url}/api/v1/saga-events", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert response.status_code in (200, 201), response.text


def _open(page, live_console, role: str, path: str) -> None:
    """Log in as `role`, open `path`, and wait until its live socket is open (so nothing posted next is missed)."""
    login(page, live_console, role)
    page.add_init_script(WS_OPEN)
    page.goto(f"{live_console.url}{path}")
    wait_for_js(page, "window.wsOpen === true")


def _row(page, saga_id: str):
    return page.locator("[data-testid=saga-row]", has=page.locator(f"a:text-is('{saga_id}')"))


def test_it_shows_new_sagas_live_and_holds_them_while_paused(transactional_db, world, live_console, page):
    token = world.token(world.viewer)  # a machine client's token: the viewer role is enough to report events
    _post(live_console, token, ev("old-1", "reserve", seq=1))
    _open(page, live_console, "operator", "/sagas/?saga_type=order")
    expect(page.locator("[data-testid=saga-row]")).to_have_count(1)
    page.evaluate("window.marker = 'same page'")  # gone if anything reloads the page

    _post(live_console, token, [ev("live-1", "reserve", seq=1), ev("other-1", "reserve", seq=1, saga_type="refund")])
    expect(_row(page, "live-1")).to_be_visible(timeout=10_000)
    # New rows go on top; a saga outside the page's filter (type=refund) does not appear.
    expect(page.locator("[data-testid=saga-row]").first).to_contain_text("live-1")
    page.wait_for_timeout(500)
    expect(_row(page, "other-1")).to_have_count(0)

    page.click("[data-testid=live-toggle]")
    expect(page.locator("#live-state")).to_have_text("paused")
    _post(live_console, token, ev("held-1", "reserve", seq=1))
    page.wait_for_timeout(1500)  # longer than a live row takes (the first arrived well within it)
    expect(_row(page, "held-1")).to_have_count(0)

    page.click("[data-testid=live-toggle]")  # resuming loads what was held, once
    expect(_row(page, "held-1")).to_be_visible(timeout=10_000)
    expect(_row(page, "other-1")).to_have_count(0)
    assert page.evaluate("window.marker") == "same page"
    expect(page.locator("[data-testid=saga-row]")).to_have_count(3)


def test_it_shows_events_arriving_for_the_open_saga(transactional_db, world, live_console, page):
    token = world.token(world.viewer)
    _post(live_console, token, ev("tl-1", "reserve", seq=1))
    _open(page, live_console, "viewer", "/sagas/tl-1/")
    expect(page.locator("[data-testid=event]")).to_have_count(1)
    _post(
        live_console, token, ev("tl-1", "charge", status="failed", seq=2, error={"type": "Declined", "message": "no"})
    )
    expect(page.locator("[data-testid=event]")).to_have_count(2, timeout=10_000)
    expect(page.locator("[data-testid=saga-status]")).to_have_text("failed")
    expect(page.locator("[data-testid=event][data-status=failed]")).to_contain_text("Declined")


def test_it_tells_an_earlier_page_and_the_failed_only_view_that_new_events_arrived(
    transactional_db, world, live_console, page
):
    from sagas.queries import TIMELINE_PAGE_SIZE

    token = world.token(world.viewer)
    _post(live_console, token, [ev("tl-2", f"step-{i}", seq=i) for i in range(1, TIMELINE_PAGE_SIZE + 2)])
    # Page 1 of 2: the reader may be in the middle of it, so it stays as it is and says it is behind.
    _open(page, live_console, "viewer", "/sagas/tl-2/?page=1")
    events = page.locator("[data-testid=event]")
    expect(events).to_have_count(TIMELINE_PAGE_SIZE)
    expect(page.locator("[data-testid=timeline-news]")).to_be_hidden()
    _post(live_console, token, ev("tl-2", "late", status="failed", seq=TIMELINE_PAGE_SIZE + 2))
    news = page.locator("[data-testid=timeline-news]")
    expect(news).to_be_visible(timeout=10_000)
    expect(news).to_contain_text(f"{TIMELINE_PAGE_SIZE + 2} events")
    expect(events).to_have_count(TIMELINE_PAGE_SIZE)
    expect(events.first).to_contain_text("step-1")
    page.click("[data-testid=timeline-news] >> text=Latest page")
    expect(page).to_have_url(f"{live_console.url}/sagas/tl-2/?page=2")
    expect(events).to_have_count(2)

    # The failed-only view is filtered: it is told too, rather than replaced by the unfiltered last page.
    page.goto(f"{live_console.url}/sagas/tl-2/?failed_only=1")
    wait_for_js(page, "window.wsOpen === true")
    expect(events).to_have_count(1)
    _post(live_console, token, ev("tl-2", "later", status="failed", seq=TIMELINE_PAGE_SIZE + 3))
    expect(news).to_be_visible(timeout=10_000)
    expect(events).to_have_count(1)


def test_it_inserts_a_saga_that_starts_matching_the_filter_live(transactional_db, world, live_console, page):
    # The on-call view: a list of failed sagas. A running saga that fails must appear without a reload; one of a
    # type the filter excludes must not, and neither must a saga whose change still leaves it outside the filter.
    token = world.token(world.viewer)
    _post(live_console, token, [ev("fails-1", "reserve", seq=1), ev("other-1", "reserve", seq=1, saga_type="refund")])
    _post(live_console, token, ev("stays-1", "reserve", seq=1))
    _open(page, live_console, "viewer", "/sagas/?saga_type=order&status=failed")
    expect(page.locator("[data-testid=saga-row]")).to_have_count(0)
    expect(page.locator("[data-testid=no-sagas]")).to_have_count(1)

    failure = {"type": "Declined", "message": "no"}
    _post(
        live_console,
        token,
        [
            ev("fails-1", "charge", status="failed", seq=2, error=failure),
            ev("other-1", "charge", status="failed", seq=2, error=failure, saga_type="refund"),
            ev("stays-1", "charge", seq=2),  # changed, still running: not on a failed list
        ],
    )
    expect(_row(page, "fails-1")).to_be_visible(timeout=10_000)
    expect(_row(page, "fails-1")).to_contain_text("failed")
    expect(page.locator("[data-testid=no-sagas]")).to_have_count(0)
    page.wait_for_timeout(500)
    expect(_row(page, "other-1")).to_have_count(0)
    expect(_row(page, "stays-1")).to_have_count(0)

    # A further change of a row already shown swaps it in place: still one row, not a second copy on top.
    _post(live_console, token, ev("fails-1", "charge", status="failed", seq=3, error=failure))
    page.wait_for_timeout(1000)
    expect(page.locator("[data-testid=saga-row]")).to_have_count(1)
