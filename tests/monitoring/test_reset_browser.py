"""The offset reset in a real browser: an operator picks a date-time with the page's own input, sees the messages the
group will skip in the dry run, confirms, and the Celery worker moves the offsets."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from console import brokers
from monitoring.models import ConsumerTarget
from tests.conftest import login

pytestmark = pytest.mark.browser


def test_it_resets_a_group_to_a_date_time_from_the_page(
    transactional_db, world, live_console, page, console_brokers, new_destination, unique
):
    kafka = brokers.get("kafka")
    topic = new_destination(kafka, partitions=2)
    for i in range(3):
        kafka.publish(topic, f"before {i}".encode(), key="same")  # one key: every message on one partition
    # The date-time input has whole seconds: the next whole second comes after the first three messages.
    at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    time.sleep((at - datetime.now(UTC)).total_seconds() + 0.05)
    for i in range(2):
        kafka.publish(topic, f"after {i}".encode(), key="same")
    ends = kafka.end_offsets([(topic, 0), (topic, 1)])
    [busy] = [p for p in (0, 1) if ends[(topic, p)] == 5]
    group = unique("grp")
    kafka.commit_offsets(group, {(topic, 0): 0, (topic, 1): 0})
    ConsumerTarget.objects.create(
        broker="kafka",
        connection="default",
        kind="group",
        name=group,
        status="OK",
        status_since=timezone.now(),
        details={"topics": [topic]},
    )

    login(page, live_console, "operator")
    page.goto(f"{live_console.url}/consumers/kafka/{group}/")
    form = page.locator("[data-testid=reset-form]")
    form.locator("select[name=to]").select_option("datetime")
    form.locator("input[name=at]").fill(at.strftime("%Y-%m-%dT%H:%M:%S"))
    form.locator("input[name=partitions]").fill(str(busy))
    form.locator("input[name=reason]").fill("skip what was sent before the fix")
    form.locator("button").click()

    expect(page.locator(f"[data-testid=delta-{busy}]")).to_have_text("+3 (skipped)")
    expect(page.locator("[data-testid=delta-total]")).to_have_text("+3 skipped")
    page.get_by_role("button", name="Reset offsets").click()
    expect(page.locator("[data-testid=status]").first).to_have_text("succeeded", timeout=30_000)
    committed = {o.partition: o.committed for o in kafka.group_offsets(group)}
    assert committed == {busy: 3, 1 - busy: 0}
