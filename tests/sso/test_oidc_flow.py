"""The OIDC flow without a browser, against the same consoles and provider: revalidation through the refresh token,
a provider's refusal, an answer sent to another provider's callback."""

from datetime import timedelta
from urllib.parse import urlsplit

import requests
from django.utils import timezone

from console.models import ExternalIdentity
from console.revalidation import revalidate_once


def _start(console_url: str, provider: str = "mock") -> tuple[requests.Session, str]:
    browser = requests.Session()
    to_idp = browser.get(f"{console_url}/oidc/{provider}/authenticate/", allow_redirects=False, timeout=10)
    assert to_idp.status_code == 302, to_idp.text[:500]
    return browser, to_idp.headers["Location"]


def _sign_in(console_url: str, sub: str, provider: str = "mock") -> requests.Session:
    browser, authorize = _start(console_url, provider)
    back = requests.post(authorize, data={"sub": sub}, allow_redirects=False, timeout=10)
    landed = browser.get(back.headers["Location"], allow_redirects=False, timeout=10)
    assert landed.headers["Location"] == "/", landed.headers.get("Location")
    return browser


def _later(settings):
    return timezone.now() + timedelta(seconds=settings.SSO_REFRESH_SECONDS + 1)


def test_it_lowers_the_role_at_revalidation_and_keeps_the_session(idp, sso_consoles, sso_settings, transactional_db):
    idp.set_user("ula-sub", ["ops"])
    browser = _sign_in(sso_consoles.url, "ula-sub")
    assert browser.get(f"{sso_consoles.url}/api/v1/me", timeout=10).json()["role"] == "operator"
    idp.set_user("ula-sub", ["dev-frontend"])
    assert revalidate_once(_later(sso_settings)) == {"checked": 1, "changed": 1, "ended": 0, "unreachable": 0}
    assert browser.get(f"{sso_consoles.url}/api/v1/me", timeout=10).json()["role"] == "viewer"
    # the refresh token was rotated and kept: the next pass asks again with the new one
    assert (
        revalidate_once(_later(sso_settings) + timedelta(seconds=sso_settings.SSO_REFRESH_SECONDS + 1))["checked"] == 1
    )


def test_it_ends_the_sessions_of_a_user_the_provider_no_longer_vouches_for(
    idp, sso_consoles, sso_settings, transactional_db
):
    idp.set_user("vic-sub", ["ops"])
    browser = _sign_in(sso_consoles.url, "vic-sub")
    idp.revoke("vic-sub")  # disabled at the provider: its refresh token is refused
    assert revalidate_once(_later(sso_settings))["ended"] == 1
    assert browser.get(f"{sso_consoles.url}/api/v1/me", timeout=10).status_code == 401
    assert ExternalIdentity.objects.get(subject="vic-sub").role == ""


def test_it_says_so_when_the_provider_refuses_the_sign_in(idp, sso_consoles, transactional_db):
    browser, authorize = _start(sso_consoles.url)
    back = requests.post(authorize, data={"action": "deny"}, allow_redirects=False, timeout=10)
    landed = browser.get(back.headers["Location"], timeout=10)
    assert landed.status_code == 403 and urlsplit(landed.url).path == "/login/refused/"
    assert "Sign in with Mock IdP refused the sign-in" in landed.text


def test_it_refuses_an_answer_sent_to_another_providers_callback(idp, sso_consoles, transactional_db):
    idp.set_user("mix-sub", ["ops"])
    browser, authorize = _start(sso_consoles.url, "backup")
    back = urlsplit(
        requests.post(authorize, data={"sub": "mix-sub"}, allow_redirects=False, timeout=10).headers["Location"]
    )
    landed = browser.get(f"{sso_consoles.url}/oidc/mock/callback/?{back.query}", timeout=10)
    assert urlsplit(landed.url).path == "/login/refused/"
    assert "another provider" in landed.text
    assert browser.get(f"{sso_consoles.url}/api/v1/me", timeout=10).status_code == 401


def test_it_signs_in_through_the_second_provider_as_its_own_identity(idp, sso_consoles, transactional_db):
    idp.set_user("bo-sub", ["ops"])
    first = _sign_in(sso_consoles.url, "bo-sub")
    second = _sign_in(sso_consoles.url, "bo-sub", provider="backup")
    assert first.get(f"{sso_consoles.url}/api/v1/me", timeout=10).json()["username"] == "bo"
    # The same subject at another provider is another person as far as Switchyard knows: never the same account.
    assert second.get(f"{sso_consoles.url}/api/v1/me", timeout=10).json() == {
        "username": "oidc:backup:bo", "role": "operator", "via": "session"
    }  # fmt: skip
    assert set(ExternalIdentity.objects.values_list("provider", flat=True)) == {"oidc:mock", "oidc:backup"}
