"""LDAP and Active Directory sign-in through django-auth-ldap: search for the user with the service account, bind as
them with the password they typed, read their groups, map the groups (DNs or names) to a role.

django-auth-ldap finds Django users by username; here they are found by their DN (ExternalIdentity), so a directory
user called `admin` never becomes the bootstrap admin, nor any other local account of the same name.
"""

from __future__ import annotations

import logging

import ldap
from django.conf import settings
from django_auth_ldap.backend import LDAPBackend, _LDAPUser

from console.models import ExternalIdentity
from console.sign_in import Claimed, Refused, Unreachable, _username_for, refuse, sign_in_identity

log = logging.getLogger(__name__)


def claimed_from(ldap_user) -> Claimed:
    directory = settings.SSO_LDAP
    dns = sorted(ldap_user.group_dns)
    names = sorted(ldap_user.group_names)
    attrs = ldap_user.attrs or {}

    def first(attr: str) -> str:
        values = attrs.get(attr) or [""]
        return str(values[0])

    values = dns + [n for n in names if n not in dns]
    return Claimed(
        provider=directory.key,
        subject=ldap_user.dn.lower(),
        login=ldap_user._username,
        values=values,
        role=directory.roles.role_for(values),
        email=first("mail")[:254],
        first_name=first("givenName"),
        last_name=first("sn"),
    )


class DirectoryBackend(LDAPBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        self._request = request
        return super().authenticate(request, username=username, password=password, **kwargs)

    def get_or_build_user(self, username, ldap_user):
        claimed = claimed_from(ldap_user)
        if claimed.role is None and settings.SSO_STRICT:
            # Refused before a Django user is made for them; an existing one loses its role and sessions.
            try:
                sign_in_identity(claimed, settings.SSO_LDAP.label)
            except Refused as e:
                refuse(getattr(self, "_request", None), "No Switchyard role", str(e), claimed.values)
            raise ldap_user.AuthenticationFailed("no role is mapped from the user's groups")
        identity = ExternalIdentity.objects.filter(provider=claimed.provider, subject=claimed.subject).first()
        if identity is not None:
            return identity.user, False
        return self.get_user_model()(username=_username_for(username, claimed.provider)), True

    def authenticate_ldap_user(self, ldap_user, password):
        user = super().authenticate_ldap_user(ldap_user, password)
        if user is None:
            return None
        try:
            return sign_in_identity(claimed_from(ldap_user), settings.SSO_LDAP.label, user=user)
        except Refused as e:
            refuse(getattr(self, "_request", None), "Sign-in refused", str(e))
            return None


def revalidate(identity) -> Claimed | None:
    """The directory's answer about `identity` now (searched with the service account), or None when the user is no
    longer found there. Raises Unreachable when the directory cannot be asked."""
    if settings.SSO_LDAP is None:
        return None
    ldap_user = _LDAPUser(DirectoryBackend(), username=identity.login)
    try:
        ldap_user.connection  # noqa: B018  (binds with the service account: raises when the directory is down)
        if ldap_user.attrs is None or ldap_user.dn.lower() != identity.subject:
            return None  # gone, or the name now belongs to someone else
        return claimed_from(ldap_user)
    except ldap.LDAPError as e:
        raise Unreachable(f"LDAP: {e}") from e
