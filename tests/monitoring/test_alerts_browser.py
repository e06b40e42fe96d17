"""The Alerts page in a real browser: an operator silences a rule with the datetime picker and acknowledges an
incident, both through the page's own forms (CSRF token and idempotency key included)."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from monitoring.models import AlertRule, Incident
from tests.conftest import login

pytestmark = pytest.mark.browser


def test_it_silences_a_rule_and_acknowledges_an_incident_from_the_page(transactional_db, world, live_console, page):
    rule = AlertRule.objects.create(name="orders stopped", kind="consumer_status", minutes=5)
    incident = Incident.objects.create(rule=rule, subject="kafka:orders", summary="kafka orders is STOP")
    login(page, live_console, "operator")
    page.goto(f"{live_console.url}/consumers/alerts/")

    ack = page.locator(f"[data-testid=ack-{incident.pk}]")
    ack.locator("input[name=note]").fill("restarting the consumer")
    ack.locator("button").click()
    expect(ack).to_contain_text("by operator at")
    expect(ack).to_contain_text("restarting the consumer")

    until = (timezone.now() + timedelta(hours=2)).replace(second=0, microsecond=0)
    cell = page.locator(f"[data-testid=silence-{rule.pk}]")
    cell.locator("summary").click()
    cell.locator("input[name=until]").fill(until.strftime("%Y-%m-%dT%H:%M"))
    cell.locator("input[name=reason]").fill("broker upgrade")
    cell.locator("button").click()
    expect(cell).to_contain_text(f"silenced until {until:%Y-%m-%d %H:%M} UTC")
    expect(cell).to_contain_text("by operator: broker upgrade")
    page.screenshot(path="/tmp/halert-alerts.png", full_page=True)

    rule.refresh_from_db()
    incident.refresh_from_db()
    assert rule.silenced_until == until and incident.acknowledged_by == world.operator
