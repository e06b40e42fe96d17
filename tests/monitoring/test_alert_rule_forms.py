"""The rule forms on the Alerts page: a refused create or edit re-shows the page (400) with each field's error next to
it and what was typed, and the same idempotency key then saves it once."""

import re

from console.models import AuditEntry
from monitoring.models import AlertRule


def _form(content: bytes, testid: str) -> str:
    """The HTML of one form on the page, so an assertion cannot be satisfied by another form's fields."""
    html = content.decode()
    return re.search(rf'<form[^>]*data-testid="{testid}".*?</form>', html, re.S).group(0)


def test_it_re_shows_the_new_rule_form_with_field_errors_and_what_was_typed(world):
    client = world.client(world.admin)
    typed = {"name": 'lag "><b>orders', "kind": "consumer_lag", "threshold": "0", "seconds": "0", "minutes": "7"}
    typed.update(target_name="orders", email="oncall@example.com", reason="paging on-call", idempotency_key="n1")
    refused = client.post("/consumers/alerts/create", typed)
    assert refused.status_code == 400
    form = _form(refused.content, "new-rule")
    assert 'data-testid="error-broker">name the broker of the group or queue</span>' in form
    assert 'data-testid="error-threshold">give X (messages behind), seconds behind, or both</span>' in form
    assert 'value="lag &quot;&gt;&lt;b&gt;orders"' in form and "<b>orders" not in refused.content.decode()
    assert '<option value="consumer_lag" selected>' in form and 'name="minutes" value="7"' in form
    assert 'value="orders"' in form and 'value="oncall@example.com"' in form and 'value="paging on-call"' in form
    assert 'name="idempotency_key" value="n1"' in form
    assert b'data-testid="form-error"' in refused.content
    assert not AlertRule.objects.exists()

    fixed = client.post("/consumers/alerts/create", {**typed, "broker": "kafka", "threshold": "500"})
    assert fixed.status_code == 302
    again = client.post("/consumers/alerts/create", {**typed, "broker": "kafka", "threshold": "500"})
    assert again.status_code == 302
    [rule] = AlertRule.objects.all()
    assert (rule.name, rule.broker, rule.target_name, rule.threshold, rule.minutes) == (
        'lag "><b>orders',
        "kafka",
        "orders",
        500,
        7,
    )
    assert AuditEntry.objects.filter(action="alert_rule.create", idempotency_key="n1").count() == 1


def test_it_re_shows_a_rule_edit_form_open_with_field_errors_and_what_was_typed(world):
    rule = AlertRule.objects.create(name="stopped", kind="consumer_status", minutes=5, webhook_url="https://h/x")
    other = AlertRule.objects.create(name="other", kind="consumer_status", minutes=9)
    client = world.client(world.admin)
    typed = {"name": "stopped (renamed)", "kind": "consumer_status", "threshold": "0", "seconds": "0", "minutes": "x"}
    typed.update(webhook_url="ftp://h/x", enabled="off", reason="tighter", idempotency_key="e1")
    refused = client.post(f"/consumers/alerts/{rule.pk}/edit", typed)
    assert refused.status_code == 400
    html = refused.content.decode()
    assert re.search(rf"<details open><summary>Edit / delete</summary>\s*<form[^>]*/{rule.pk}/edit\"", html)
    form = _form(refused.content, f"edit-{rule.pk}")
    assert 'data-testid="error-webhook_url">must be an http(s) URL</span>' in form
    assert 'data-testid="error-minutes">must be an integer ≥ 0</span>' in form
    assert 'value="stopped (renamed)"' in form and 'value="ftp://h/x"' in form and 'name="minutes" value="x"' in form
    assert 'value="tighter"' in form and 'value="e1"' in form and 'value="on" checked' not in form
    # The other rule's form shows the stored rule, closed, without errors.
    other_form = _form(refused.content, f"edit-{other.pk}")
    assert 'value="other"' in other_form and "field-error" not in other_form
    rule.refresh_from_db()
    assert (rule.name, rule.webhook_url, rule.minutes, rule.enabled) == ("stopped", "https://h/x", 5, True)

    saved = client.post(f"/consumers/alerts/{rule.pk}/edit", {**typed, "webhook_url": "https://h/y", "minutes": "2"})
    assert saved.status_code == 302
    rule.refresh_from_db()
    assert (rule.name, rule.webhook_url, rule.minutes, rule.enabled) == ("stopped (renamed)", "https://h/y", 2, False)


def test_it_refuses_rule_forms_to_an_operator(world):
    rule = AlertRule.objects.create(name="stopped", kind="consumer_status", minutes=5)
    client = world.client(world.operator)
    body = {"name": "x", "kind": "nope", "reason": "r", "idempotency_key": "o1"}
    assert client.post("/consumers/alerts/create", body).status_code == 403
    assert client.post(f"/consumers/alerts/{rule.pk}/edit", body).status_code == 403
    assert AlertRule.objects.get().name == "stopped"


def test_it_refuses_a_rule_on_the_page_with_the_same_field_errors_as_the_api(world):
    """The page's rule form (AlertRulePageForm) ends in clean_rule, as the API's body does (issue 15): one rule, one
    set of field errors, whichever door it came through. A number that does not parse is named once."""
    client = world.client(world.admin)
    typed = {"name": "stopped", "kind": "consumer_status", "minutes": "5", "seconds": "30", "threshold": "0"}

    page = client.post("/consumers/alerts/create", {**typed, "idempotency_key": "p1", "reason": "r"})
    api = client.post(
        "/api/v1/alert-rules",
        {**typed, "minutes": 5, "seconds": 30, "threshold": 0, "reason": "r", "idempotency_key": "a1"},
        content_type="application/json",
    )
    unparsed = client.post("/consumers/alerts/create", {**typed, "seconds": "0", "minutes": "soon", "reason": "r"})

    (message,) = api.json()["fields"]["seconds"]
    assert page.status_code == 400 and f'data-testid="error-seconds">{message}</span>' in page.content.decode()
    assert _form(unparsed.content, "new-rule").count("must be an integer ≥ 0") == 1
    assert not AlertRule.objects.exists()
