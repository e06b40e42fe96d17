"""A consumer's history charts render (uPlot draws a canvas) for 1 h / 24 h / 7 d, and a target first seen while the
Consumers page is open appears on it without a reload."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from console import brokers
from monitoring.sampler import sample_all
from tests.conftest import login, wait_for_socket, watch_socket
from tests.monitoring.conftest import (  # noqa: F401 - fixtures
    console_brokers,
    moto_endpoint,
    new_destination,
    noida_bootstrap,
    service_logs,
    unique,
)

pytestmark = pytest.mark.browser
SHOTS = Path(__file__).resolve().parent.parent.parent / ".artifacts" / "screenshots"


def _sample(now=None):
    """sample_all() off the main thread: Playwright's event loop lives there, and broadcast() needs a loop-free one."""
    from django.db import connection

    def run():
        try:
            sample_all(now)
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(run).result()


def test_it_draws_the_history_chart_for_each_range(
    transactional_db,
    world,
    live_console,
    page,
    console_brokers,  # noqa: F811
    new_destination,  # noqa: F811
    unique,  # noqa: F811
):
    kafka = brokers.get("kafka")
    topic = new_destination(kafka)
    group = unique("grp")
    for i in range(6):
        kafka.publish(topic, f"m{i}".encode())
    kafka.commit_offsets(group, {(topic, 0): 1})
    now = timezone.now()
    # Three days of samples, the lag growing: each range has points to draw.
    for minutes in (3 * 24 * 60, 12 * 60, 50, 30, 10, 0):
        _sample(now - timedelta(minutes=minutes))
    login(page, live_console, "viewer")
    page.goto(f"{live_console.url}/consumers/kafka/{group}/")
    for r in ("1h", "24h", "7d"):
        page.click(f"#chart-ranges a[data-range='{r}']")
        chart = page.locator(f"#chart[data-range='{r}']")
        expect(chart.locator(".uplot canvas")).to_be_visible()
        expect(chart.locator(".u-legend")).to_contain_text("lag (messages)")
        assert chart.locator(".uplot canvas").bounding_box()["height"] > 100
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#chart").screenshot(path=str(SHOTS / "monitoring-chart-7d.png"))


def test_it_adds_a_target_first_seen_while_the_page_is_open(
    transactional_db,
    world,
    live_console,
    page,
    console_brokers,  # noqa: F811
    new_destination,  # noqa: F811
    unique,  # noqa: F811
):
    kafka = brokers.get("kafka")
    topic = new_destination(kafka)
    kafka.publish(topic, b"one")
    _sample()
    watch_socket(page)
    login(page, live_console, "viewer")
    page.goto(f"{live_console.url}/consumers/")
    page.evaluate("window.__marker = 'same page'")
    group = unique("grp")
    kafka.commit_offsets(group, {(topic, 0): 0})
    row = page.locator(f"[data-testid=consumer-row][data-name='{group}']")
    # The socket may still be connecting when the first pass broadcasts: a target is only "new" once, so wait
    # for the socket before the pass that discovers the group.
    wait_for_socket(page)
    _sample()
    expect(row).to_have_count(1, timeout=10_000)
    expect(row.locator("[data-testid=lag]")).to_have_text("1")
    assert page.evaluate("window.__marker") == "same page"
