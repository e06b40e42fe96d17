"""Sign-in configuration: identity providers from the environment, and how their groups become Switchyard roles.

Plain Python, no Django models: console/settings.py imports this to validate the variables at start-up (a bad value
stops the process with a message naming the variable and key). console/sign_in.py, oidc.py and ldap_auth.py use it.

Roles come from one claim (OIDC) or the user's groups (LDAP). The claim is a JMESPath expression into the ID token's
claims merged with userinfo's (`groups`, `realm_access.roles`, `"https://example.com/groups"`), as Grafana's
`role_attribute_path`. A role map lists, per role, the values that grant it: exact names, or `re:` and a regular
expression that must match the whole value, both without regard to case. The strongest role any value grants wins.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import jmespath
import jmespath.exceptions
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

ROLES = ("admin", "operator", "viewer")  # strongest first
DEFAULT_ROLE_MAP = {
    "admin": ["switchyard-admins"],
    "operator": ["switchyard-operators"],
    "viewer": ["switchyard-viewers"],
}
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,30}")


class SignInConfigError(ValueError):
    """A sign-in variable cannot be used; the text names it."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class RoleMap(_Spec):
    admin: tuple[str, ...] = ()
    operator: tuple[str, ...] = ()
    viewer: tuple[str, ...] = ()

    @field_validator("admin", "operator", "viewer", mode="before")
    @classmethod
    def _entries(cls, value):
        if isinstance(value, str):
            value = [value]
        for entry in value or ():
            if isinstance(entry, str) and entry.startswith("re:"):
                try:
                    re.compile(entry[3:])
                except re.error as e:
                    raise ValueError(f"{entry!r} is not a regular expression: {e}") from e
        return value

    def role_for(self, values: Iterable[str]) -> str | None:
        """The strongest role any of `values` (group names, DNs, role names) grants, or None."""
        folded = [v.casefold() for v in values]
        for role in ROLES:
            for entry in getattr(self, role):
                if entry.startswith("re:"):
                    pattern = re.compile(entry[3:], re.IGNORECASE)
                    if any(pattern.fullmatch(v) for v in folded):
                        return role
                elif entry.casefold() in folded:
                    return role
        return None


class OidcProvider(_Spec):
    """One OpenID Connect provider: a button on the login page."""

    name: str  # in URLs (/oidc/<name>/callback/) and in the audit log (oidc:<name>)
    label: str = ""
    issuer: str
    client_id: str
    client_secret: SecretStr
    scopes: str = "openid email profile"
    roles_claim: str = "groups"
    roles: RoleMap = Field(default_factory=lambda: RoleMap(**DEFAULT_ROLE_MAP))
    # Added to the authorization request, e.g. Google's {"access_type": "offline", "prompt": "consent"}.
    extra_params: dict[str, str] = Field(default_factory=dict)
    # The claim the user's Switchyard name comes from (the first that is present; `sub` is the last resort).
    username_claims: tuple[str, ...] = ("preferred_username", "email")
    # Ends the provider's session on logout when its discovery document has an end_session_endpoint.
    logout: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.fullmatch(value):
            raise ValueError("use lower-case letters, digits, '-' and '_' (at most 31)")
        return value

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        parsed = urllib.parse.urlsplit(value)
        if parsed.scheme not in ("https", "http") or not parsed.netloc:
            raise ValueError("must be the provider's https:// issuer URL")
        return value.rstrip("/")

    @field_validator("roles_claim")
    @classmethod
    def _claim(cls, value: str) -> str:
        try:
            jmespath.compile(value)
        except jmespath.exceptions.JMESPathError as e:
            raise ValueError(f"is not a JMESPath expression: {e}") from e
        return value

    @property
    def key(self) -> str:
        return f"oidc:{self.name}"

    @property
    def button(self) -> str:
        return self.label or f"Sign in with {self.name}"

    def role_values(self, claims: Mapping[str, Any]) -> list[str]:
        return claim_values(claims, self.roles_claim)


class LdapDirectory(_Spec):
    """An LDAP or Active Directory server: users search-and-bind, groups searched under a base."""

    server_uri: str
    bind_dn: str = ""
    bind_password: SecretStr = SecretStr("")
    start_tls: bool = False
    user_search_base: str
    # %(user)s is the name typed on the login page; Active Directory: (sAMAccountName=%(user)s).
    user_filter: str = "(uid=%(user)s)"
    group_search_base: str = ""
    group_type: Literal[
        "groupOfNames", "groupOfUniqueNames", "posixGroup", "activeDirectory", "nestedActiveDirectory"
    ] = "groupOfNames"
    roles: RoleMap = Field(default_factory=lambda: RoleMap(**DEFAULT_ROLE_MAP))
    label: str = "Directory (LDAP)"
    ca_file: str | None = None

    @property
    def key(self) -> str:
        return "ldap"


def claim_values(claims: Mapping[str, Any], path: str) -> list[str]:
    """What the claim at `path` holds, as strings: a list, a single string, or nothing."""
    found = jmespath.search(path, dict(claims))
    if found is None:
        return []
    if isinstance(found, str | int | float | bool):
        return [str(found)]
    if isinstance(found, list):
        return [str(v) for v in found if isinstance(v, str | int | float) and not isinstance(v, bool)]
    return []


def _errors(prefix: str, e: ValidationError) -> str:
    parts = []
    for err in e.errors():
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{prefix}{where}: {err['msg']}" if where else f"{prefix.rstrip('.: ')}: {err['msg']}")
    return "; ".join(parts)


def _json(name: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise SignInConfigError(f"{name} is not valid JSON: {e}") from None


def _secret_from(env: Mapping[str, str], name: str) -> str | None:
    path = env.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as e:
            raise SignInConfigError(f"{name}_FILE={path!r} cannot be read: {e}") from None
    return env.get(name) or None


def oidc_providers_from_env(env: Mapping[str, str], providers_json: str | None) -> dict[str, OidcProvider]:
    """OIDC_PROVIDERS (a JSON list of provider objects; `client_secret_file` reads a secret) or, for one provider,
    OIDC_ISSUER, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET[_FILE], and optional OIDC_NAME, OIDC_LABEL, OIDC_SCOPES,
    OIDC_ROLES_CLAIM, OIDC_ROLES (JSON: {"operator": ["ops", "re:team-.*-oncall"], ...})."""
    items: list[dict]
    if providers_json:
        raw = _json("OIDC_PROVIDERS", providers_json)
        if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
            raise SignInConfigError("OIDC_PROVIDERS must be a JSON list of provider objects")
        items = [dict(item) for item in raw]
        for index, item in enumerate(items):
            path = item.pop("client_secret_file", None)
            if path:
                try:
                    item["client_secret"] = Path(path).read_text().strip()
                except OSError as e:
                    raise SignInConfigError(f"OIDC_PROVIDERS[{index}].client_secret_file: {e}") from None
        where = "OIDC_PROVIDERS[{}]."
    elif env.get("OIDC_ISSUER"):
        item = {
            "name": env.get("OIDC_NAME") or "sso",
            "issuer": env["OIDC_ISSUER"],
            "client_id": env.get("OIDC_CLIENT_ID") or "",
            "client_secret": _secret_from(env, "OIDC_CLIENT_SECRET") or "",
        }
        for var, key in (("OIDC_LABEL", "label"), ("OIDC_SCOPES", "scopes"), ("OIDC_ROLES_CLAIM", "roles_claim")):
            if env.get(var):
                item[key] = env[var]
        if env.get("OIDC_ROLES"):
            item["roles"] = _json("OIDC_ROLES", env["OIDC_ROLES"])
        if env.get("OIDC_EXTRA_PARAMS"):
            item["extra_params"] = _json("OIDC_EXTRA_PARAMS", env["OIDC_EXTRA_PARAMS"])
        items = [item]
        where = "OIDC_"
    else:
        return {}
    providers: dict[str, OidcProvider] = {}
    for index, item in enumerate(items):
        try:
            provider = OidcProvider(**item)
        except ValidationError as e:
            raise SignInConfigError(_errors(where.format(index), e)) from None
        if not provider.client_id or not provider.client_secret.get_secret_value():
            raise SignInConfigError(f"{where.format(index)}client_id and client_secret are required")
        if provider.name in providers:
            raise SignInConfigError(f"OIDC_PROVIDERS: the name {provider.name!r} is used twice")
        providers[provider.name] = provider
    return providers


def ldap_from_env(env: Mapping[str, str], bind_password: str | None) -> LdapDirectory | None:
    """LDAP_SERVER_URI and LDAP_USER_SEARCH_BASE turn LDAP on; see the README's "Sign-in" for the rest."""
    if not env.get("LDAP_SERVER_URI"):
        return None
    item: dict[str, Any] = {"server_uri": env["LDAP_SERVER_URI"], "user_search_base": env.get("LDAP_USER_SEARCH_BASE")}
    for var, key in (
        ("LDAP_BIND_DN", "bind_dn"),
        ("LDAP_USER_FILTER", "user_filter"),
        ("LDAP_GROUP_SEARCH_BASE", "group_search_base"),
        ("LDAP_GROUP_TYPE", "group_type"),
        ("LDAP_LABEL", "label"),
        ("LDAP_CA_FILE", "ca_file"),
    ):
        if env.get(var):
            item[key] = env[var]
    if bind_password:
        item["bind_password"] = bind_password
    if env.get("LDAP_START_TLS"):
        item["start_tls"] = env["LDAP_START_TLS"].strip().lower() in ("1", "true", "yes", "on")
    if env.get("LDAP_ROLES"):
        item["roles"] = _json("LDAP_ROLES", env["LDAP_ROLES"])
    try:
        return LdapDirectory(**item)
    except ValidationError as e:
        raise SignInConfigError(_errors("LDAP_", e).replace("LDAP_user_search_base", "LDAP_USER_SEARCH_BASE")) from None


def provider_origins(providers: Mapping[str, OidcProvider]) -> list[str]:
    """The issuers' origins: where the login buttons and the provider logout send the browser."""
    origins = []
    for provider in providers.values():
        parts = urllib.parse.urlsplit(provider.issuer)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in origins:
            origins.append(origin)
    return origins


def django_auth_ldap_settings(directory: LdapDirectory) -> dict[str, Any]:
    """django-auth-ldap's AUTH_LDAP_* settings for `directory` (python-ldap imported only when LDAP is configured)."""
    import ldap
    from django_auth_ldap import config

    group_types = {
        "groupOfNames": config.GroupOfNamesType,
        "groupOfUniqueNames": config.GroupOfUniqueNamesType,
        "posixGroup": config.PosixGroupType,
        "activeDirectory": config.ActiveDirectoryGroupType,
        "nestedActiveDirectory": config.NestedActiveDirectoryGroupType,
    }
    object_classes = {
        "groupOfNames": "groupOfNames",
        "groupOfUniqueNames": "groupOfUniqueNames",
        "posixGroup": "posixGroup",
        "activeDirectory": "group",
        "nestedActiveDirectory": "group",
    }
    options: dict[Any, Any] = {ldap.OPT_REFERRALS: 0, ldap.OPT_NETWORK_TIMEOUT: 10}
    if directory.ca_file:
        options[ldap.OPT_X_TLS_CACERTFILE] = directory.ca_file
        options[ldap.OPT_X_TLS_NEWCTX] = 0
    settings: dict[str, Any] = {
        "AUTH_LDAP_SERVER_URI": directory.server_uri,
        "AUTH_LDAP_BIND_DN": directory.bind_dn,
        "AUTH_LDAP_BIND_PASSWORD": directory.bind_password.get_secret_value(),
        "AUTH_LDAP_START_TLS": directory.start_tls,
        "AUTH_LDAP_CONNECTION_OPTIONS": options,
        "AUTH_LDAP_USER_SEARCH": config.LDAPSearch(
            directory.user_search_base, ldap.SCOPE_SUBTREE, directory.user_filter
        ),
        "AUTH_LDAP_USER_ATTR_MAP": {"first_name": "givenName", "last_name": "sn", "email": "mail"},
        "AUTH_LDAP_ALWAYS_UPDATE_USER": True,
        "AUTH_LDAP_CACHE_TIMEOUT": 0,  # group membership is read at every login and every revalidation
    }
    if directory.group_search_base:
        settings["AUTH_LDAP_GROUP_SEARCH"] = config.LDAPSearch(
            directory.group_search_base,
            ldap.SCOPE_SUBTREE,
            f"(objectClass={object_classes[directory.group_type]})",
        )
        group_type = group_types[directory.group_type]
        settings["AUTH_LDAP_GROUP_TYPE"] = (
            group_type(name_attr="cn") if directory.group_type != "posixGroup" else group_type()
        )
    return settings
