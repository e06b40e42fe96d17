"""OIDC sign-in end to end: Debian's Chromium, two daphne consoles, and a real OpenID Connect provider process."""

import re
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.utils import timezone
from playwright.sync_api import expect

from console.models import AuditEntry, ExternalIdentity, Operation
from console.revalidation import revalidate_once
from dlq.models import DeadLetter, DeadLetterSource
from tests.sso.conftest import sso_login, wait_until

pytestmark = pytest.mark.browser


@pytest.fixture
def letter(transactional_db):
    source = DeadLetterSource.objects.create(broker="kafka", destination=f"s-{uuid.uuid4().hex[:6]}.DLQ")
    now = timezone.now()
    return DeadLetter.objects.create(
        source=source, origin="orders", message_id="0:1", headers={}, body=b"{}",
        first_failure_at=now, last_failure_at=now, fingerprint="fp",
    )  # fmt: skip


def _replay(page, console_url: str, letter) -> None:
    page.goto(f"{console_url}/dead-letters/{letter.pk}/")
    form = page.locator("form[action='/dead-letters/replay']")
    form.locator("input[name=reason]").fill("upstream fixed")
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"/operations/[0-9a-f-]+/$"))


def test_it_shows_a_button_for_each_provider(sso_consoles, page):
    page.goto(f"{sso_consoles.url}/login/")
    expect(page.locator("#sign-in-mock")).to_have_text("Sign in with Mock IdP")
    expect(page.locator("#sign-in-backup")).to_have_text("Sign in with Backup IdP")


def test_it_lets_an_operator_group_user_replay_and_audits_their_provider_and_subject(
    idp, sso_consoles, sso_settings, letter, page
):
    idp.set_user("alice-sub", ["ops", "dev-payments"])
    sso_login(page, sso_consoles.url, "alice-sub")
    assert page.url == f"{sso_consoles.url}/"
    _replay(page, sso_consoles.url, letter)
    op = Operation.objects.get(kind="dlq.replay")
    assert op.requested_by.username == "alice"
    entry = AuditEntry.objects.get(operation=op)
    assert (entry.actor_provider, entry.actor_subject) == ("oidc:mock", "alice-sub")
    page.goto(f"{sso_consoles.url}/audit/")  # an operator reads the audit log: who, through which provider
    actor = page.locator("[data-testid=audit-actor]").first
    expect(actor).to_have_text("alice (oidc:mock)")
    expect(actor).to_have_attribute("title", "oidc:mock: alice-sub")
    identity = ExternalIdentity.objects.get(subject="alice-sub")
    assert identity.role == "operator" and identity.refresh_token
    assert "." not in identity.refresh_token[:4] and len(identity.refresh_token) > 60  # sealed, not the token


def test_it_does_not_let_a_viewer_group_user_replay(idp, sso_consoles, letter, page):
    idp.set_user("victor-sub", ["dev-checkout"])
    sso_login(page, sso_consoles.url, "victor-sub")
    page.goto(f"{sso_consoles.url}/dead-letters/{letter.pk}/")
    expect(page.locator("h1")).to_have_text(f"Dead letter {letter.pk}")
    expect(page.locator("form[action='/dead-letters/replay']")).to_have_count(0)
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    answer = page.request.post(
        f"{sso_consoles.url}/dead-letters/replay",
        form={"csrfmiddlewaretoken": csrf, "ids": str(letter.pk), "reason": "x", "idempotency_key": "k1"},
        max_redirects=0,
    )
    assert answer.status == 403
    assert not Operation.objects.exists()


def test_it_refuses_a_user_with_no_mapped_group_and_says_why(idp, sso_consoles, transactional_db, page):
    idp.set_user("nina-sub", ["marketing"])
    sso_login(page, sso_consoles.url, "nina-sub")
    assert page.url == f"{sso_consoles.url}/login/refused/"
    expect(page.locator("h1")).to_have_text("No Switchyard role")
    expect(page.locator("#sign-in-refused")).to_contain_text("none of your groups grants a Switchyard role")
    expect(page.locator("#sign-in-refused")).to_contain_text("marketing")
    page.goto(f"{sso_consoles.url}/")
    assert page.url.startswith(f"{sso_consoles.url}/login/")  # not signed in
    assert not ExternalIdentity.objects.filter(subject="nina-sub").exists()


def test_it_gives_a_user_moved_between_groups_the_new_role_at_the_next_login(idp, sso_consoles, letter, page):
    idp.set_user("mo-sub", ["team-payments-oncall"])  # operator through the pattern
    sso_login(page, sso_consoles.url, "mo-sub")
    page.goto(f"{sso_consoles.url}/dead-letters/{letter.pk}/")
    expect(page.locator("form[action='/dead-letters/replay']")).to_have_count(1)
    idp.set_user("mo-sub", ["dev-payments"])  # moved to a viewer group at the provider
    page.locator("form[action='/logout/'] button").click()
    page.wait_for_url(lambda url: "/oauth2/end_session" in url)
    page.locator("form button[type=submit]").first.click()
    page.wait_for_url(f"{sso_consoles.url}/login/")
    sso_login(page, sso_consoles.url, "mo-sub")
    page.goto(f"{sso_consoles.url}/dead-letters/{letter.pk}/")
    expect(page.locator("h1")).to_have_text(f"Dead letter {letter.pk}")
    expect(page.locator("form[action='/dead-letters/replay']")).to_have_count(0)
    assert ExternalIdentity.objects.get(subject="mo-sub").role == "viewer"
    assert list(ExternalIdentity.objects.get(subject="mo-sub").user.groups.values_list("name", flat=True)) == ["viewer"]


def test_it_ends_the_provider_session_on_logout(idp, sso_consoles, page):
    idp.set_user("lou-sub", ["ops"])
    sso_login(page, sso_consoles.url, "lou-sub")
    page.locator("form[action='/logout/'] button").click()
    page.wait_for_url(lambda url: url.startswith(f"{idp.url}/oauth2/end_session"))
    query = parse_qs(urlsplit(page.url).query)
    assert query["post_logout_redirect_uri"] == [f"{sso_consoles.url}/login/"]
    assert query["client_id"] == ["switchyard"] and query["id_token_hint"][0].count(".") == 2
    page.locator("form button[type=submit]").first.click()
    page.wait_for_url(f"{sso_consoles.url}/login/")
    page.goto(f"{sso_consoles.url}/")
    assert page.url.startswith(f"{sso_consoles.url}/login/")


def test_it_signs_in_through_one_console_and_acts_through_the_other(idp, sso_consoles, letter, page):
    first, second = sso_consoles.urls
    idp.set_user("tess-sub", ["ops"])
    sso_login(page, first, "tess-sub")
    _replay(page, second, letter)  # the same cookie, another process: the session is in PostgreSQL and Redis
    assert Operation.objects.get(kind="dlq.replay").requested_by.username == "tess"


def test_it_takes_the_callback_on_the_other_console(idp, sso_consoles, transactional_db):
    """The login state (state, nonce, PKCE verifier) is in the shared session store: the provider's redirect may
    reach the other replica, as behind a load balancer without sticky sessions (same Host, another process)."""
    first, second = sso_consoles.urls
    idp.set_user("cal-sub", ["ops"])
    browser = requests.Session()
    to_idp = browser.get(f"{first}/oidc/mock/authenticate/", allow_redirects=False)
    assert to_idp.status_code == 302
    query = parse_qs(urlsplit(to_idp.headers["Location"]).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
    back = requests.post(to_idp.headers["Location"], data={"sub": "cal-sub"}, allow_redirects=False, timeout=10)
    callback = urlsplit(back.headers["Location"])
    assert callback.path == "/oidc/mock/callback/"
    answer = browser.get(
        f"{second}{callback.path}?{callback.query}",
        headers={"Host": urlsplit(first).netloc},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 302 and answer.headers["Location"] == "/", answer.headers.get("Location")
    assert browser.get(f"{second}/api/v1/me", timeout=10).json()["username"] == "cal"


def test_it_requires_pkce_at_the_provider(idp):
    """The tests' provider refuses an authorization request without PKCE: the sign-ins above prove it was sent."""
    params = {"response_type": "code", "client_id": "switchyard", "redirect_uri": "http://127.0.0.1/cb",
              "scope": "openid", "state": "s", "nonce": "n"}  # fmt: skip
    without = requests.get(f"{idp.url}/oauth2/authorize", params=params, allow_redirects=False, timeout=10)
    assert without.status_code == 302 and "PKCE+is+required" in without.headers["Location"]
    pkce = {**params, "code_challenge": "a" * 43, "code_challenge_method": "S256"}
    assert (
        requests.get(f"{idp.url}/oauth2/authorize", params=pkce, allow_redirects=False, timeout=10).status_code == 200
    )


def test_it_ends_the_sessions_and_sockets_of_a_user_who_lost_the_role_at_the_next_revalidation(
    idp, sso_consoles, sso_settings, letter, page
):
    idp.set_user("rae-sub", ["ops"])
    sso_login(page, sso_consoles.url, "rae-sub")
    page.goto(f"{sso_consoles.url}/dead-letters/")
    closed = []
    page.on("websocket", lambda ws: ws.on("close", lambda _: closed.append(ws.url)))
    page.reload()
    wait_until(lambda: page.evaluate("document.querySelector('[ws-connect]') !== null"), 5)
    page.wait_for_timeout(500)
    idp.set_user("rae-sub", ["marketing"])  # removed from every Switchyard group at the provider
    later = timezone.now() + timezone.timedelta(seconds=sso_settings.SSO_REFRESH_SECONDS + 1)
    counts = revalidate_once(later)
    assert counts["ended"] == 1, counts
    # Playwright's sync API delivers events while it is called: wait through it.
    for _ in range(100):
        if closed:
            break
        page.wait_for_timeout(100)
    assert closed, "the live socket stayed open"
    page.goto(f"{sso_consoles.url}/dead-letters/")
    assert page.url.startswith(f"{sso_consoles.url}/login/")
    identity = ExternalIdentity.objects.get(subject="rae-sub")
    assert identity.role == "" and not identity.user.groups.exists()
