"""Sign-in settings from the environment, and the role map: what each variable means, and the errors that name it."""

import json

import pytest

from console.actions import record_audit
from console.identity import RoleMap, SignInConfigError, claim_values, ldap_from_env, oidc_providers_from_env

ISSUER = {"OIDC_ISSUER": "https://idp.example.org/", "OIDC_CLIENT_ID": "switchyard"}


def test_it_maps_names_and_patterns_to_the_strongest_role_without_regard_to_case():
    roles = RoleMap(admin=["Platform-Admins"], operator=["re:team-.*-oncall"], viewer=["re:.*"])
    assert roles.role_for(["platform-admins", "team-a-oncall"]) == "admin"
    assert roles.role_for(["TEAM-payments-ONCALL"]) == "operator"
    assert roles.role_for(["anyone"]) == "viewer"
    assert RoleMap(operator=["ops"]).role_for(["ops-readonly", "devs"]) is None  # exact means exact
    assert RoleMap(operator=["re:ops"]).role_for(["ops-readonly"]) is None  # a pattern matches the whole value


def test_it_reads_the_roles_claim_by_a_json_path():
    claims = {
        "groups": ["a", "b"],
        "realm_access": {"roles": ["ops"]},
        "https://example.org/groups": "single",
        "resource_access": {"switchyard": {"roles": ["viewer", 3, None, True]}},
    }
    assert claim_values(claims, "groups") == ["a", "b"]
    assert claim_values(claims, "realm_access.roles") == ["ops"]
    assert claim_values(claims, '"https://example.org/groups"') == ["single"]
    assert claim_values(claims, "resource_access.switchyard.roles") == ["viewer", "3"]
    assert claim_values(claims, "missing.path") == []
    # Google's ID token has no groups: the README maps its hosted domain and e-mail instead.
    google = {"hd": "example.com", "email": "a@example.com"}
    assert claim_values(google, "[hd, email]") == ["example.com", "a@example.com"]
    assert claim_values({"email": "a@gmail.com"}, "[hd, email]") == ["a@gmail.com"]


def test_it_reads_one_provider_from_oidc_variables_with_the_secret_from_a_file(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    env = {**ISSUER, "OIDC_CLIENT_SECRET_FILE": str(secret), "OIDC_ROLES": json.dumps({"operator": ["ops"]})}
    (provider,) = oidc_providers_from_env(env, None).values()
    assert (provider.name, provider.issuer, provider.roles_claim) == ("sso", "https://idp.example.org", "groups")
    assert provider.client_secret.get_secret_value() == "from-a-file"
    assert "from-a-file" not in repr(provider) and "from-a-file" not in str(provider)
    assert provider.roles.role_for(["ops"]) == "operator" and provider.roles.role_for(["switchyard-viewers"]) is None


def test_it_reads_several_providers_from_oidc_providers():
    providers = oidc_providers_from_env(
        {},
        json.dumps(
            [
                {"name": "okta", "issuer": "https://a.okta.com", "client_id": "x", "client_secret": "y"},
                {"name": "entra", "issuer": "https://login.microsoftonline.com/t/v2.0", "client_id": "x",
                 "client_secret": "y", "roles_claim": "roles"},
            ]
        ),
    )  # fmt: skip
    assert list(providers) == ["okta", "entra"]
    assert providers["okta"].roles.role_for(["switchyard-operators"]) == "operator"  # the default map


@pytest.mark.parametrize(
    ("env", "providers", "message"),
    [
        ({}, "[{", "OIDC_PROVIDERS is not valid JSON"),
        ({}, '{"name": "x"}', "OIDC_PROVIDERS must be a JSON list"),
        (ISSUER, None, "OIDC_client_id and client_secret are required"),
        ({**ISSUER, "OIDC_CLIENT_SECRET": "s", "OIDC_ROLES": '{"operator": ["re:("]}'}, None, "roles.operator"),
        ({**ISSUER, "OIDC_CLIENT_SECRET": "s", "OIDC_ROLES_CLAIM": "a[["}, None, "roles_claim"),
        ({**ISSUER, "OIDC_CLIENT_SECRET": "s", "OIDC_NAME": "Bad Name"}, None, "OIDC_name"),
        ({"OIDC_ISSUER": "idp.example.org", "OIDC_CLIENT_ID": "x", "OIDC_CLIENT_SECRET": "s"}, None, "OIDC_issuer"),
        (
            {},
            json.dumps([{"name": "a", "issuer": "https://i", "client_id": "x", "client_secret": "y"}] * 2),
            "used twice",
        ),
    ],
)
def test_it_names_the_variable_and_key_of_a_bad_setting(env, providers, message):
    with pytest.raises(SignInConfigError) as caught:
        oidc_providers_from_env(env, providers)
    assert message in str(caught.value)


def test_it_needs_a_user_search_base_for_ldap():
    assert ldap_from_env({}, None) is None
    with pytest.raises(SignInConfigError, match="LDAP_USER_SEARCH_BASE"):
        ldap_from_env({"LDAP_SERVER_URI": "ldap://x"}, None)
    directory = ldap_from_env({"LDAP_SERVER_URI": "ldap://x", "LDAP_USER_SEARCH_BASE": "ou=p,dc=x"}, "pw")
    assert directory.bind_password.get_secret_value() == "pw" and "pw" not in repr(directory)


def test_it_audits_a_local_user_as_local_with_their_username(world):
    entry = record_audit(world.operator, "test.action", "thing", 1)
    assert (entry.actor_provider, entry.actor_subject) == ("local", "operator")
    assert entry.as_json()["actor_provider"] == "local"
