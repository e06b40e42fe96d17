"""Revalidation: every provider asked again about the people signed in through it, so a role removed at the provider
ends here within SSO_REFRESH_SECONDS. Above sign_in and the providers' modules, which it calls; they never call it."""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from console import ldap_auth, oidc
from console.models import ExternalIdentity
from console.sign_in import Claimed, Unreachable, _apply, log


def revalidate_once(now=None) -> dict[str, int]:
    """One pass: every identity signed in within the session lifetime and not checked for SSO_REFRESH_SECONDS is
    asked of its provider again. A provider that cannot be reached is skipped (tried again next pass); one that says
    the account is gone, or no longer maps to a role, ends the user's sessions."""
    now = now or timezone.now()
    due = ExternalIdentity.objects.filter(
        signed_in_at__gte=now - timedelta(seconds=settings.SESSION_COOKIE_AGE),
        checked_at__lt=now - timedelta(seconds=settings.SSO_REFRESH_SECONDS),
    ).select_related("user")
    counts = {"checked": 0, "changed": 0, "ended": 0, "unreachable": 0}
    for identity in due:
        before = identity.role
        try:
            if identity.provider.startswith("oidc:"):
                claimed = oidc.revalidate(identity)
            elif identity.provider == "ldap":
                claimed = ldap_auth.revalidate(identity)
            else:
                continue
        except Unreachable as e:
            log.warning("revalidation: %s %s: %s", identity.provider, identity.subject, e)
            counts["unreachable"] += 1
            continue
        counts["checked"] += 1
        with transaction.atomic():
            identity = ExternalIdentity.objects.select_for_update().select_related("user").get(pk=identity.pk)
            gone = claimed is None or (claimed.role is None and settings.SSO_STRICT)
            if claimed is None:
                claimed = Claimed(identity.provider, identity.subject, identity.login, [], None)
            _apply(identity, claimed, end_sessions=gone)
        counts["changed"] += int((claimed.role or "") != before)
        counts["ended"] += int(gone)
    return counts
