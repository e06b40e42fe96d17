"""Signing in: the login page, local passwords, and what every identity provider's sign-in has in common.

An identity provider (an OIDC provider in console/oidc.py, the directory in console/ldap_auth.py) proves who someone
is and what their groups claim holds; `sign_in_identity` turns that into a Switchyard user whose role is set from the
claim at every sign-in, and `console.revalidation.revalidate_once` asks every provider again every
SSO_REFRESH_SECONDS, so a role removed at the provider is removed here — from the user's groups, so their API tokens
lose it too, and from their open sessions and live sockets, which end.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group
from django.contrib.sessions.models import Session
from django.db import transaction
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from console import live
from console.access import ADMIN, OPERATOR, VIEWER
from console.models import ExternalIdentity

log = logging.getLogger(__name__)
ROLE_GROUPS = (ADMIN, OPERATOR, VIEWER)
REFUSED_KEY = "sign_in_refused"  # session key: why the last sign-in was refused, for the page that says so
PROVIDER_KEY = "sign_in_provider"  # session key: the OIDC provider this session signed in with (for logout)


class Refused(Exception):
    """The provider said who the user is, but Switchyard will not let them in; the text says why, to them."""


# --- local passwords ---


class LocalPasswordBackend(ModelBackend):
    """Django's username and password, unless LOCAL_PASSWORDS is off: then only the bootstrap admin (the login
    `manage.py ensure_admin` makes for first setup) may use one. Users made by a provider have no usable password."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if not settings.LOCAL_PASSWORDS and username != settings.BOOTSTRAP_ADMIN:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


class LoginView(auth_views.LoginView):
    """Django's login form, plus a button for each OIDC provider."""

    template_name = "registration/login.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["providers"] = list(settings.SSO_OIDC_PROVIDERS.values())
        context["local_passwords"] = settings.LOCAL_PASSWORDS
        context["directory"] = settings.SSO_LDAP
        return context

    def form_invalid(self, form):
        # The directory knew the user but refused them (no role): say why on its own page, not "didn't match".
        if REFUSED_KEY in self.request.session:
            return HttpResponseRedirect(reverse("sign_in_refused"))
        return super().form_invalid(form)


def sign_in_refused(request: HttpRequest):
    """Why the last sign-in did not let the user in (strict mode, a provider error, a failed check)."""
    reason = request.session.pop(REFUSED_KEY, None) or {
        "title": "Sign-in did not complete",
        "detail": "The identity provider did not complete the sign-in. Try again from the login page.",
    }
    return render(request, "registration/refused.html", {"reason": reason}, status=403)


def refuse(request: HttpRequest | None, title: str, detail: str, values: list[str] | None = None) -> None:
    if request is not None and hasattr(request, "session"):
        request.session[REFUSED_KEY] = {"title": title, "detail": detail, "values": (values or [])[:50]}


# --- identities ---


def identity_of(user) -> tuple[str, str]:
    """(provider, subject) of a user for the audit log: "local" and the username when no provider made them."""
    if user is None or not getattr(user, "pk", None):
        return "", ""
    identity = ExternalIdentity.objects.filter(user_id=user.pk).values_list("provider", "subject").first()
    return identity if identity else ("local", user.get_username())


@dataclass(frozen=True)
class Claimed:
    """What a provider said about someone at sign-in or revalidation."""

    provider: str  # "oidc:okta", "ldap"
    subject: str
    login: str  # preferred name, for the username of a new user
    values: list[str]  # what the roles claim / the groups held
    role: str | None
    email: str = ""
    first_name: str = ""
    last_name: str = ""


def role_refusal(claimed: Claimed, provider_label: str) -> Refused:
    held = ", ".join(claimed.values[:20]) or "none"
    return Refused(
        f"You signed in at {provider_label} as {claimed.login}, but none of your groups grants a Switchyard role "
        f"(groups: {held}). Ask your administrator to add you to a group that maps to viewer, operator or admin."
    )


def _username_for(login: str, provider: str) -> str:
    """The login as it is, unless a user of that name exists (a local user or another provider's): then prefixed
    with the provider, so an identity never takes over someone else's account."""
    user_model = get_user_model()
    base = (login or "user")[:120]
    candidates = [base, f"{provider}:{base}"] + [f"{provider}:{base}.{n}" for n in range(2, 50)]
    for candidate in candidates:
        if not user_model.objects.filter(username=candidate).exists():
            return candidate
    raise Refused(f"no free username for {login}")


def sign_in_identity(claimed: Claimed, label: str, *, refresh_token: str | None = None, user=None):
    """The user for `claimed`, created on first sign-in, with their role set from the claim (raises Refused in strict
    mode when no role is mapped). `user`: a user the backend already made (django-auth-ldap makes its own)."""
    if claimed.role is None and settings.SSO_STRICT:
        with transaction.atomic():  # committed before refusing: the role they no longer have is gone everywhere
            identity = (
                ExternalIdentity.objects.select_for_update()
                .select_related("user")
                .filter(provider=claimed.provider, subject=claimed.subject)
                .first()
            )
            if identity is not None:
                _apply(identity, claimed, end_sessions=True)
        raise role_refusal(claimed, label)
    with transaction.atomic():
        return _sign_in(claimed, refresh_token, user)


def _sign_in(claimed: Claimed, refresh_token: str | None, user):
    identity = (
        ExternalIdentity.objects.select_for_update()
        .select_related("user")
        .filter(provider=claimed.provider, subject=claimed.subject)
        .first()
    )
    if identity is None:
        if user is None:
            user = get_user_model()(username=_username_for(claimed.login, claimed.provider))
            user.set_unusable_password()
        user.email, user.first_name, user.last_name = claimed.email, claimed.first_name[:150], claimed.last_name[:150]
        user.save()
        identity = ExternalIdentity(user=user, provider=claimed.provider, subject=claimed.subject)
    if not identity.user.is_active:
        raise Refused("Your Switchyard account is deactivated.")
    identity.login = claimed.login[:255]
    identity.signed_in_at = timezone.now()
    if refresh_token is not None:
        identity.refresh_token = seal(refresh_token)
    _apply(identity, claimed, end_sessions=False)
    return identity.user


def _apply(identity: ExternalIdentity, claimed: Claimed, *, end_sessions: bool) -> None:
    """Set the user's role group to what the claim maps to, and remember what was seen. The group change reaches the
    user's live sockets through console.live's m2m signal; `end_sessions` also deletes every session of the user."""
    user = identity.user
    wanted = {claimed.role} if claimed.role else set()
    current = set(user.groups.filter(name__in=ROLE_GROUPS).values_list("name", flat=True))
    if current - wanted:
        user.groups.remove(*Group.objects.filter(name__in=current - wanted))
    if wanted - current:
        user.groups.add(*[Group.objects.get_or_create(name=name)[0] for name in wanted - current])
    if current != wanted:
        log.info("sign-in: %s %s role %s -> %s", claimed.provider, claimed.subject, _one(current), claimed.role)
    identity.role = claimed.role or ""
    identity.role_values = claimed.values[:200]
    identity.checked_at = timezone.now()
    identity.save()
    if end_sessions:
        end_user_sessions(user.pk)


def _one(roles: set[str]) -> str | None:
    return next((r for r in ROLE_GROUPS if r in roles), None)


def end_user_sessions(user_id) -> int:
    """Delete every session of the user (any web process then sees them signed out) and close their live sockets.
    Sessions do not say whose they are in an indexed column, so the unexpired ones are read: a console has few."""
    from importlib import import_module

    store = import_module(settings.SESSION_ENGINE).SessionStore
    ended = 0
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
        if str(session.get_decoded().get("_auth_user_id")) == str(user_id):
            store(session_key=session.session_key).delete()  # through the store: a Redis-cached copy goes too
            ended += 1
    transaction.on_commit(lambda: live.recheck_user(user_id))
    return ended


class Unreachable(Exception):
    """The provider could not be asked (network, a 5xx): nothing is concluded about the user."""


# --- sealing refresh tokens: a credential at rest, so encrypted (Fernet, key derived from SECRET_KEY) ---


def _fernet():
    from cryptography.fernet import Fernet

    key = hashlib.sha256(b"switchyard.sign_in.refresh_token:" + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def seal(token: str) -> str:
    return _fernet().encrypt(token.encode()).decode() if token else ""


def unseal(sealed: str) -> str | None:
    from cryptography.fernet import InvalidToken

    if not sealed:
        return None
    try:
        return _fernet().decrypt(sealed.encode()).decode()
    except InvalidToken:
        return None  # SECRET_KEY rotated: the identity cannot be revalidated until the user signs in again
