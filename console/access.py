"""Roles: viewer (read), operator (act), admin (configure, manage users).

Roles are Django groups created by a migration. A superuser is an admin. Each role includes the ones below it.
"""

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User

VIEWER, OPERATOR, ADMIN = "viewer", "operator", "admin"
ROLE_ORDER = {VIEWER: 1, OPERATOR: 2, ADMIN: 3}


def role_of(user: User | AnonymousUser) -> str | None:
    """The strongest role the user holds, or None (an outsider can log in but sees nothing)."""
    if not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser:
        return ADMIN
    cached = getattr(user, "_switchyard_role", "unset")
    if cached != "unset":
        return cached
    names = set(user.groups.values_list("name", flat=True))
    role = next((r for r in (ADMIN, OPERATOR, VIEWER) if r in names), None)
    user._switchyard_role = role
    return role


def has_role(user, required: str) -> bool:
    role = role_of(user)
    return role is not None and ROLE_ORDER[role] >= ROLE_ORDER[required]


def can_read_contents(user) -> bool:
    """May this user read message bodies, outbox payloads and saga data (SWITCHYARD_CONTENTS_ROLE)? A user who may not
    still sees that something failed and why: exception type and message, failure headers, sizes."""
    return has_role(user, settings.CONTENTS_ROLE)


# What a page or API answer says where it left contents out.
CONTENTS_NOTE = "message contents are visible to operators (SWITCHYARD_CONTENTS_ROLE)"


def roles(request):
    """Template context: `role`, `can_act`, `can_admin`, `can_read_contents` for showing or hiding controls and data."""
    user = getattr(request, "user", None)
    if user is None:
        return {}
    return {
        "role": role_of(user),
        "can_view": has_role(user, VIEWER),
        "can_act": has_role(user, OPERATOR),
        "can_admin": has_role(user, ADMIN),
        "can_read_contents": can_read_contents(user),
    }
