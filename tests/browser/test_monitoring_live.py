"""A viewer watches a consumer row change live when lag appears, without a reload; the pause toggle holds updates."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import expect

from console import brokers
from monitoring.sampler import sample_all
from tests.conftest import login
from tests.monitoring.conftest import (  # noqa: F401 - fixtures
    console_brokers,  # noqa: F811
    moto_endpoint,
    new_destination,  # noqa: F811
    noida_bootstrap,
    service_logs,
    unique,
)

pytestmark = pytest.mark.browser


def _sample():
    """sample_all() off the main thread: Playwright's event loop lives there, and broadcast() needs a loop-free one."""
    from django.db import connection

    def run():
        try:
            sample_all()
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(run).result()


def test_it_updates_a_consumer_row_live_when_lag_appears(
    transactional_db,
    world,
    live_console,
    page,
    console_brokers,  # noqa: F811
    new_destination,  # noqa: F811
    unique,  # noqa: F811 - fixtures imported above
):
    kafka = brokers.get("kafka")
    topic = new_destination(kafka)
    group = unique("grp")
    kafka.publish(topic, b"first")
    kafka.commit_offsets(group, {(topic, 0): 1})
    _sample()
    login(page, live_console, "viewer")
    page.goto(f"{live_console.url}/consumers/")
    row = page.locator(f"[data-testid=consumer-row][data-name='{group}']")
    expect(row.locator("[data-testid=lag]")).to_have_text("0")
    page.evaluate("window.__marker = 'same page'")
    # The socket may still be connecting: add lag and sample until a pass reaches the page.
    for _ in range(20):
        kafka.publish(topic, b"more")
        _sample()
        try:
            expect(row.locator("[data-testid=lag]")).not_to_have_text("0", timeout=1000)
            break
        except AssertionError:
            continue
    lag = kafka.group_offsets(group)[0].lag
    expect(row.locator("[data-testid=lag]")).to_have_text(str(lag))
    assert page.evaluate("window.__marker") == "same page"

    # Paused: a further change does not reach the row until the operator resumes (and the next pass).
    page.click("[data-testid=pause-live]")
    kafka.publish(topic, b"while paused")
    _sample()
    page.wait_for_timeout(1500)
    expect(row.locator("[data-testid=lag]")).to_have_text(str(lag))
    page.click("[data-testid=pause-live]")
    kafka.publish(topic, b"after resume")
    _sample()
    expect(row.locator("[data-testid=lag]")).to_have_text(str(lag + 2), timeout=10_000)
