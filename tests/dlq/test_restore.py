"""Restore: an archived or discarded dead letter goes back to new (replayable, out of the purge's reach) — from the
API, the inbox and the detail page, with a reason, an idempotency key and an audit entry; and both pages say when the
purge will delete an archived or discarded one."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from console.models import AuditEntry
from console.operations import execute
from dlq.actions import do_set_status, purge
from dlq.models import DeadLetter, DeadLetterSource
from tests.dlq.test_inbox import _store


@pytest.fixture
def source(db):
    return DeadLetterSource.objects.create(broker="kafka", destination="orders.DLQ")


def _api(client, path: str, body: dict):
    return client.post(f"/api/v1/dead-letters/{path}", body, "application/json")


def _dry_run(client, dl: DeadLetter) -> int:
    """Replays the letter as a dry run to its completion; how many replay records it has afterwards."""
    body = {"ids": [dl.pk], "reason": "try", "idempotency_key": str(uuid.uuid4()), "dry_run": True}
    response = _api(client, "replay", body)
    assert response.status_code == 201, response.content
    execute(response.json()["operation"]["id"])
    return dl.replays.count()


def test_it_restores_archived_and_discarded_letters_and_makes_them_replayable_again(source, world):
    archived, discarded, fresh = _store(source, 3)
    do_set_status(world.operator, [archived.pk], "archived", "noise", "a-1")
    do_set_status(world.operator, [discarded.pk], "discarded", "noise", "d-1")
    fresh_changed_at = DeadLetter.objects.get(pk=fresh.pk).status_changed_at
    operator = world.client(world.operator)
    assert _dry_run(operator, archived) == 0  # the replay refuses an archived letter

    body = {"ids": [archived.pk, discarded.pk, fresh.pk], "reason": "discarded by mistake", "idempotency_key": "r-1"}
    response = _api(operator, "restore", body)

    assert response.status_code == 200 and response.json() == {"changed": 2, "status": "new"}
    rows = {dl.pk: dl for dl in DeadLetter.objects.all()}
    assert {rows[archived.pk].status, rows[discarded.pk].status} == {"new"}
    assert rows[archived.pk].can_replay() and rows[archived.pk].purge_at() is None
    assert rows[fresh.pk].status_changed_at == fresh_changed_at  # already new: untouched
    assert _dry_run(operator, archived) == 1


def test_it_restores_only_archived_or_discarded_letters(source, world):
    (dl,) = _store(source)
    DeadLetter.objects.filter(pk=dl.pk).update(status="replayed", replay_count=1)
    response = _api(world.client(world.operator), "restore", {"ids": [dl.pk], "reason": "r", "idempotency_key": "k"})
    assert response.json()["changed"] == 0 and DeadLetter.objects.get(pk=dl.pk).status == "replayed"


def test_it_refuses_a_restore_to_viewers_and_without_a_reason(source, world):
    (dl,) = _store(source)
    do_set_status(world.operator, [dl.pk], "discarded", "noise", "d-1")
    body = {"ids": [dl.pk], "reason": "r", "idempotency_key": "k-1"}
    assert _api(world.client(world.viewer), "restore", body).status_code == 403
    viewer_page = world.client(world.viewer).post("/dead-letters/status", {**body, "status": "new"})
    assert viewer_page.status_code == 403

    operator = world.client(world.operator)
    missing = _api(operator, "restore", {"ids": [dl.pk], "idempotency_key": "k-2"})
    assert missing.status_code == 400 and missing.json()["fields"]["reason"] == ["a reason is required"]
    page = operator.post(
        "/dead-letters/status", {"ids": [dl.pk], "status": "new", "reason": " ", "idempotency_key": "k-3"}, follow=True
    )
    assert "Choose archive, discard or restore, and give a reason." in page.content.decode()
    assert DeadLetter.objects.get(pk=dl.pk).status == "discarded"
    assert not AuditEntry.objects.filter(action="dead_letter.restored").exists()


def test_it_restores_once_per_idempotency_key_and_audits_it(source, world):
    (dl,) = _store(source)
    do_set_status(world.operator, [dl.pk], "archived", "noise", "a-1")
    operator = world.client(world.operator)
    body = {"ids": [dl.pk], "reason": "needed after all", "idempotency_key": "r-1"}
    assert _api(operator, "restore", body).json()["changed"] == 1

    do_set_status(world.operator, [dl.pk], "archived", "noise again", "a-2")
    repeat = _api(operator, "restore", body)

    assert repeat.status_code == 200 and repeat.json()["changed"] == 1  # the first answer
    assert DeadLetter.objects.get(pk=dl.pk).status == "archived"  # and no second effect
    entry = AuditEntry.objects.get(action="dead_letter.restored")
    assert (entry.actor, entry.reason, entry.idempotency_key, entry.via) == (
        world.operator,
        "needed after all",
        "r-1",
        "session",
    )
    assert entry.parameters == {"ids": [dl.pk], "count": 1} and entry.result == {"changed": 1, "status": "new"}
    reused = _api(operator, "archive", {**body, "ids": [dl.pk]})  # the same key for another action
    assert reused.status_code == 409 and "different request" in reused.json()["error"]


def test_it_restores_from_the_detail_page_and_shows_the_purge_date(source, world, settings):
    settings.DLQ_RETENTION_DAYS = 3
    (dl,) = _store(source)
    do_set_status(world.operator, [dl.pk], "discarded", "noise", "d-1")
    changed_at = DeadLetter.objects.get(pk=dl.pk).status_changed_at
    purge_at = timezone.localtime(changed_at + timedelta(days=3))
    url = f"/dead-letters/{dl.pk}/"

    viewer_html = world.client(world.viewer).get(url).content.decode()
    assert f"the purge deletes it after {purge_at:%Y-%m-%d %H:%M}" in viewer_html
    assert 'data-testid="restore-form"' not in viewer_html

    operator = world.client(world.operator)
    html = operator.get(url).content.decode()
    assert 'data-testid="restore-form"' in html and 'action="/dead-letters/replay"' not in html
    form = {"ids": dl.pk, "status": "new", "reason": "wrong discard", "idempotency_key": "detail-1"}
    response = operator.post("/dead-letters/status", form, HTTP_REFERER=f"http://testserver{url}", follow=True)

    assert response.redirect_chain == [(f"http://testserver{url}", 302)]
    html = response.content.decode()
    assert "1 dead letter(s) restored to new." in html and 'data-testid="purge-at"' not in html
    assert 'action="/dead-letters/replay"' in html and DeadLetter.objects.get(pk=dl.pk).status == "new"


def test_it_offers_restore_in_the_inbox_when_filtering_archived_or_discarded(source, world):
    rows = _store(source, 3)
    do_set_status(world.operator, [rows[0].pk, rows[1].pk], "archived", "noise", "a-1")
    operator = world.client(world.operator)

    archived_page = operator.get("/dead-letters/?status=archived").content.decode()
    assert 'data-testid="restore-button"' in archived_page
    assert archived_page.count('data-testid="purge-at"') == 2
    new_page = operator.get("/dead-letters/?status=new").content.decode()
    assert 'data-testid="restore-button"' not in new_page and 'data-testid="purge-at"' not in new_page

    # The form carries its filter (status=archived) as a hidden field before the button's status.
    form = {"ids": [rows[0].pk], "status": ["archived", "new"], "reason": "keep it", "idempotency_key": "inbox-1"}
    operator.post("/dead-letters/status", form)
    assert dict(DeadLetter.objects.values_list("pk", "status")) == {
        rows[0].pk: "new",
        rows[1].pk: "archived",
        rows[2].pk: "new",
    }
    assert operator.get("/api/v1/dead-letters?status=archived").json()["dead_letters"][0]["purge_at"] is not None


def test_it_shows_the_purge_date_the_purge_keeps(source, world, settings):
    settings.DLQ_RETENTION_DAYS = 2
    keep, go = _store(source, 2)
    do_set_status(world.operator, [keep.pk, go.pk], "archived", "noise", "a-1")
    now = timezone.now()
    DeadLetter.objects.filter(pk=keep.pk).update(status_changed_at=now - timedelta(days=2) + timedelta(minutes=5))
    DeadLetter.objects.filter(pk=go.pk).update(status_changed_at=now - timedelta(days=2) - timedelta(minutes=5))
    assert DeadLetter.objects.get(pk=keep.pk).purge_at() > now > DeadLetter.objects.get(pk=go.pk).purge_at()
    assert purge() == 1 and list(DeadLetter.objects.values_list("pk", flat=True)) == [keep.pk]


@pytest.mark.browser
def test_it_restores_from_the_inbox_after_filtering_in_a_browser(transactional_db, world, live_console, page):
    from playwright.sync_api import expect

    from tests.conftest import login

    source = DeadLetterSource.objects.create(broker="kafka", destination="restore.DLQ")
    kept, wrong = _store(source, 2)
    do_set_status(world.operator, [kept.pk, wrong.pk], "discarded", "noise", "d-1")
    login(page, live_console, "operator")
    page.goto(f"{live_console.url}/dead-letters/")
    expect(page.locator("[data-testid=restore-button]")).to_have_count(0)

    page.select_option("select[name=status]", "discarded")
    page.get_by_role("button", name="Filter").click()  # htmx swaps the results: the Restore action comes with them
    expect(page.locator("[data-testid=restore-button]")).to_be_visible()
    expect(page.locator(f"#dl-{wrong.pk} [data-testid=purge-at]")).to_be_visible()
    page.check(f"input[name=ids][value='{wrong.pk}']")
    page.fill("#dl-actions input[name=reason]", "discarded by mistake")
    page.click("[data-testid=restore-button]")

    expect(page.get_by_text("1 dead letter(s) restored to new.")).to_be_visible()
    assert dict(DeadLetter.objects.values_list("pk", "status")) == {kept.pk: "discarded", wrong.pk: "new"}
