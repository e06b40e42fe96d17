"""An operator ticks sagas on the list and previews a bulk action for exactly those; a live update of a ticked row
keeps its tick."""

import pytest
import requests
from playwright.sync_api import expect

from tests.conftest import login, wait_for_js
from tests.sagas.helpers import ev

pytestmark = pytest.mark.browser

WS_OPEN = "window.wsOpen = false; document.addEventListener('htmx:wsOpen', () => { window.wsOpen = true })"
FAILURE = {"type": "Declined", "message": "no"}


def _post(live_console, token: str, body) -> None:
    response = requests.post(
        f"{live_console.url}/api/v1/saga-events", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert response.status_code in (200, 201), response.text


def _tick(page, saga_id: str):
    return page.locator(f"[data-testid=saga-row] input[name=saga_ids][value='{saga_id}']")


def test_it_previews_a_bulk_action_for_the_ticked_sagas(transactional_db, world, live_console, page):
    token = world.token(world.viewer)
    _post(live_console, token, [ev(f"t{i}", "charge", status="failed", seq=1, error=FAILURE) for i in range(3)])
    login(page, live_console, "operator")
    page.add_init_script(WS_OPEN)
    page.goto(f"{live_console.url}/sagas/?status=failed")
    wait_for_js(page, "window.wsOpen === true")
    expect(page.locator("[data-testid=saga-row]")).to_have_count(3)

    _tick(page, "t0").check()
    _tick(page, "t2").check()
    expect(page.locator("[data-testid=selected-count]")).to_have_text("2")

    # t2 fails again: its row is replaced live (newer "updated" time) and stays ticked.
    _post(
        live_console,
        token,
        ev("t2", "charge", status="failed", seq=2, error=FAILURE, occurred_at="2026-03-01T09:30:00+00:00"),
    )
    row = page.locator("[data-testid=saga-row]", has=page.locator("a:text-is('t2')"))
    expect(row).to_contain_text("2026-03-01 09:30:00", timeout=10_000)
    expect(_tick(page, "t2")).to_be_checked()

    form = page.locator("[data-testid=bulk-selected-form]")
    form.locator("select[name=action]").select_option("resolve")
    form.locator("button[type=submit]").click()
    preview = page.locator("[data-testid=bulk-preview]")
    expect(preview).to_contain_text("2 sagas frozen for resolve", timeout=10_000)
    expect(preview.locator("a:text-is('t0')")).to_have_count(1)
    expect(preview.locator("a:text-is('t2')")).to_have_count(1)
    expect(preview.locator("a:text-is('t1')")).to_have_count(0)

    page.locator("[data-testid=select-all]").check()
    expect(page.locator("[data-testid=selected-count]")).to_have_text("3")
