"""LDAP sign-in against a real slapd: search and bind, groups to roles, strict refusal, revalidation."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from console.models import ApiToken, ExternalIdentity
from console.revalidation import revalidate_once
from tests.conftest import PASSWORD
from tests.sso.conftest import LDAP_PASSWORD


def _sign_in(username: str, password: str = LDAP_PASSWORD) -> tuple[Client, object]:
    client = Client()
    return client, client.post("/login/", {"username": username, "password": password})


def test_it_signs_in_a_directory_user_with_the_role_their_group_maps_to(ldap_settings, db, slapd):
    client, answer = _sign_in("olga")
    assert answer.status_code == 302 and answer["Location"] == "/"
    me = client.get("/api/v1/me").json()
    assert (me["username"], me["role"]) == ("olga", "operator")
    identity = ExternalIdentity.objects.get(login="olga")
    assert (identity.provider, identity.subject) == ("ldap", slapd.user_dn("olga"))
    assert identity.user.email == "olga@example.org" and not identity.user.has_usable_password()


def test_it_maps_a_group_by_its_name_pattern(ldap_settings, db):
    client, _ = _sign_in("vera")
    assert client.get("/api/v1/me").json()["role"] == "viewer"


def test_it_refuses_a_directory_user_in_no_mapped_group_and_says_why(ldap_settings, db):
    client, answer = _sign_in("nobody")
    assert answer.status_code == 302 and answer["Location"] == "/login/refused/"
    page = client.get("/login/refused/")
    assert page.status_code == 403
    assert b"none of your groups grants a Switchyard role" in page.content
    assert client.get("/api/v1/me").status_code == 401
    assert not ExternalIdentity.objects.exists()


def test_it_refuses_a_wrong_directory_password_as_any_wrong_password(ldap_settings, db):
    client, answer = _sign_in("olga", "wrong")
    assert answer.status_code == 200 and b"didn't match" in answer.content


def test_it_never_lets_a_directory_user_take_over_a_local_account_of_the_same_name(ldap_settings, db):
    from django.contrib.auth.models import User

    User.objects.create_superuser("admin", password=PASSWORD)
    client, _ = _sign_in("admin")  # the directory's admin, with the directory's password
    me = client.get("/api/v1/me").json()
    assert (me["username"], me["role"]) == ("ldap:admin", "operator")
    local, _ = _sign_in("admin", PASSWORD)  # the bootstrap admin still signs in with its own password
    assert local.get("/api/v1/me").json() == {"username": "admin", "role": "admin", "via": "session"}


def test_it_gives_a_user_moved_between_groups_the_new_role_at_the_next_sign_in(ldap_settings, db, slapd):
    client, _ = _sign_in("vera")
    assert client.get("/api/v1/me").json()["role"] == "viewer"
    slapd.set_members("ops", ["olga", "admin", "vera"])
    again, _ = _sign_in("vera")
    assert again.get("/api/v1/me").json()["role"] == "operator"


def test_it_ends_the_sessions_and_tokens_of_a_user_removed_from_the_group(ldap_settings, transactional_db, slapd):
    client, _ = _sign_in("olga")
    user = ExternalIdentity.objects.get(login="olga").user
    token = ApiToken.generate()
    ApiToken.objects.create(user=user, name="ci", prefix=token[:10], token_hash=ApiToken.hash(token))
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    first = Client().get("/api/v1/me", **bearer)
    assert first.json().get("role") == "operator", first.content
    slapd.set_members("ops", ["admin"])  # olga leaves the operators' group in the directory
    counts = revalidate_once(timezone.now() + timedelta(seconds=ldap_settings.SSO_REFRESH_SECONDS + 1))
    assert counts == {"checked": 1, "changed": 1, "ended": 1, "unreachable": 0}
    assert client.get("/api/v1/me").status_code == 401  # the session is gone
    # The token acts with the user's role now: none.
    assert Client().get("/api/v1/me", **bearer).json() == {"error": "the viewer role is required"}
    assert Client().get("/api/v1/operations", **bearer).status_code == 403


def test_it_keeps_the_role_while_the_directory_cannot_be_reached(ldap_settings, db):
    client, _ = _sign_in("olga")
    ldap_settings.AUTH_LDAP_SERVER_URI = "ldap://127.0.0.1:1/"
    counts = revalidate_once(timezone.now() + timedelta(seconds=ldap_settings.SSO_REFRESH_SECONDS + 1))
    assert counts["unreachable"] == 1 and counts["ended"] == 0
    assert client.get("/api/v1/me").json()["role"] == "operator"


@pytest.mark.parametrize("local_passwords", [False])
def test_it_turns_local_passwords_off_but_keeps_the_bootstrap_admin(settings, world, local_passwords):
    settings.LOCAL_PASSWORDS = local_passwords
    _, refused = _sign_in("operator", PASSWORD)
    assert refused.status_code == 200  # the form again: no local password but the bootstrap admin's
    world.admin.is_superuser = True
    world.admin.save()
    client, answer = _sign_in("admin", PASSWORD)
    assert answer.status_code == 302 and client.get("/api/v1/me").json()["role"] == "admin"


def test_it_lets_a_user_with_no_mapped_group_in_with_no_role_when_not_strict(ldap_settings, db):
    ldap_settings.SSO_STRICT = False
    client, answer = _sign_in("nobody")
    assert answer.status_code == 302 and answer["Location"] == "/"
    assert client.get("/api/v1/me").status_code == 403  # signed in, an outsider: sees nothing
    assert ExternalIdentity.objects.get(login="nobody").role == ""
