"""Archive / discard a whole group from the groups page, through a frozen preview like replay's (count, sample, then a
reason); and the group counts that say how many of a group are new, i.e. what "Replay group" sends."""

import re

import pytest

from console.models import AuditEntry
from dlq.actions import do_set_status
from dlq.models import DeadLetter, DeadLetterSource
from tests.dlq.test_inbox import _store


@pytest.fixture
def source(db):
    return DeadLetterSource.objects.create(broker="kafka", destination="orders.DLQ")


def _selection(html: str) -> str:
    return re.search(r'name="selection" value="([^"]+)"', html).group(1)


def _statuses() -> dict[int, str]:
    return dict(DeadLetter.objects.values_list("pk", "status"))


def test_it_previews_a_group_archive_then_archives_exactly_the_frozen_set(source, world):
    rows = _store(source, 7)
    group = rows[0].fingerprint
    do_set_status(world.operator, [rows[0].pk], "discarded", "noise", "d-1")
    DeadLetter.objects.filter(pk=rows[1].pk).update(status="replayed", replay_count=1)
    operator = world.client(world.operator)

    html = operator.post("/dead-letters/status/preview", {"group": group, "status": "archived"}).content.decode()
    assert 'data-testid="status-preview"' in html and "Archive 6 dead letters" in html
    assert "and 1 more" in html and html.count('href="/dead-letters/') == 5  # a sample of five
    assert f'href="/dead-letters/{rows[0].pk}/"' not in html  # already discarded: left as it is

    later = _store(source, 3, start=100)  # arrives after the preview: not part of what was shown
    form = {"selection": _selection(html), "status": "archived", "reason": "known noise", "idempotency_key": "ga-1"}
    back = "http://testserver/dead-letters/groups/"
    response = operator.post("/dead-letters/status", form, HTTP_REFERER=back, follow=True)

    assert response.redirect_chain == [(back, 302)] and "6 dead letter(s) archived." in response.content.decode()
    statuses = _statuses()
    assert [statuses[r.pk] for r in rows] == ["discarded"] + ["archived"] * 6
    assert [statuses[r.pk] for r in later] == ["new"] * 3
    entry = AuditEntry.objects.get(action="dead_letter.archived", idempotency_key="ga-1")
    assert entry.reason == "known noise" and entry.actor == world.operator
    assert sorted(entry.parameters["ids"]) == sorted(r.pk for r in rows[1:]) and entry.result["changed"] == 6

    do_set_status(world.operator, [rows[2].pk], "new", "restored", "r-1")
    operator.post("/dead-letters/status", form)  # the same key again: the first answer, no second effect
    assert _statuses()[rows[2].pk] == "new" and AuditEntry.objects.filter(idempotency_key="ga-1").count() == 1


def test_it_discards_a_group_only_with_its_own_preview_and_a_reason(source, world):
    rows = _store(source, 3)
    group = rows[0].fingerprint
    operator = world.client(world.operator)
    replay_html = operator.post("/dead-letters/replay/preview", {"group": group, "status": "new"}).content.decode()
    archive_html = operator.post("/dead-letters/status/preview", {"group": group, "status": "archived"})
    html = operator.post("/dead-letters/status/preview", {"group": group, "status": "discarded"}).content.decode()
    assert "Discard 3 dead letters" in html and 'value="discarded"' in html

    base = {"status": "discarded", "reason": "poison", "idempotency_key": "gd-1"}
    for other, said in ((replay_html, "previewed for replay"), (archive_html.content.decode(), "for archive")):
        refused = operator.post("/dead-letters/status", {**base, "selection": _selection(other)}, follow=True)
        assert said in refused.content.decode()
    no_reason = {**base, "reason": "", "selection": _selection(html)}
    no_reason = operator.post("/dead-letters/status", no_reason, follow=True)
    assert "give a reason" in no_reason.content.decode()
    assert set(_statuses().values()) == {"new"} and not AuditEntry.objects.filter(action="dead_letter.discarded")

    operator.post("/dead-letters/status", {**base, "selection": _selection(html)})
    assert set(_statuses().values()) == {"discarded"}
    assert AuditEntry.objects.get(action="dead_letter.discarded").result == {"changed": 3, "status": "discarded"}


def test_it_refuses_group_archive_and_discard_to_viewers(source, world):
    rows = _store(source, 2)
    group = rows[0].fingerprint
    viewer = world.client(world.viewer)
    assert viewer.post("/dead-letters/status/preview", {"group": group, "status": "archived"}).status_code == 403
    html = world.client(world.operator).post("/dead-letters/status/preview", {"group": group, "status": "archived"})
    form = {"selection": _selection(html.content.decode()), "status": "archived", "reason": "r", "idempotency_key": "v"}
    assert viewer.post("/dead-letters/status", form).status_code == 403
    assert set(_statuses().values()) == {"new"}
    page = viewer.get("/dead-letters/groups/").content.decode()
    assert "Archive…" not in page and "Discard…" not in page


def test_it_says_when_a_group_has_nothing_to_archive(source, world):
    rows = _store(source, 2)
    do_set_status(world.operator, [r.pk for r in rows], "archived", "noise", "a-1")
    operator = world.client(world.operator)
    html = operator.post("/dead-letters/status/preview", {"group": rows[0].fingerprint, "status": "discarded"})
    html = html.content.decode()
    assert 'data-testid="status-preview-error"' in html and "no new or replayed dead letters" in html
    bad = operator.post("/dead-letters/status/preview", {"group": rows[0].fingerprint, "status": "new"})
    assert "Choose a group, and archive or discard." in bad.content.decode()


def test_it_counts_a_groups_new_letters_apart_from_its_total(source, world):
    rows = _store(source, 5)
    group = rows[0].fingerprint
    DeadLetter.objects.filter(pk=rows[0].pk).update(status="replayed", replay_count=1)
    do_set_status(world.operator, [rows[1].pk], "archived", "noise", "a-1")
    do_set_status(world.operator, [rows[2].pk], "discarded", "noise", "d-1")
    operator = world.client(world.operator)

    html = operator.get("/dead-letters/groups/").content.decode()
    assert re.search(r'data-testid="group-count">5<', html) and re.search(r'data-testid="group-new">2<', html)
    assert "Archive…" in html and "Discard…" in html
    (api_group,) = operator.get("/api/v1/dead-letter-groups").json()["groups"]
    assert (api_group["count"], api_group["new"]) == (5, 2)
    preview = operator.post("/dead-letters/replay/preview", {"group": group, "status": "new"}).content.decode()
    assert "Replay 2 dead letters" in preview  # what the New column said


@pytest.mark.browser
def test_it_archives_a_group_from_the_groups_page_in_a_browser(transactional_db, world, live_console, page):
    from playwright.sync_api import expect

    from tests.conftest import login

    source = DeadLetterSource.objects.create(broker="kafka", destination="browser.DLQ")
    rows = _store(source, 4)
    login(page, live_console, "operator")
    page.goto(f"{live_console.url}/dead-letters/groups/")
    row = page.locator(f"[data-testid=group-row][data-fingerprint='{rows[0].fingerprint}']")
    expect(row.locator("[data-testid=group-new]")).to_have_text("4")
    row.get_by_role("button", name="Archive…").click()  # htmx sends the clicked button's status

    preview = page.locator("[data-testid=status-preview]")
    expect(preview.locator("h2")).to_have_text("Archive 4 dead letters")
    expect(preview.locator("[data-testid=status-sample] tbody tr")).to_have_count(4)
    preview.locator("input[name=reason]").fill("known noise")
    preview.locator("[data-testid=status-start]").click()

    page.wait_for_url(f"{live_console.url}/dead-letters/groups/")
    expect(page.get_by_text("4 dead letter(s) archived.")).to_be_visible()
    expect(row.locator("[data-testid=group-new]")).to_have_text("0")
    assert set(_statuses().values()) == {"archived"}
