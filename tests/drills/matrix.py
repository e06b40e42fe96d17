"""The permission matrix: every URL pattern (and method it answers) and every WebSocket route × {anonymous, viewer,
operator, admin, revoked token, logged-out session}, each cell checked against what the route declares
(`require_role` / `api(role=…)`, console.auth) plus the few per-method roles listed below; then every mutating route
refuses a session write without its CSRF token.

A cell is `login` (a page redirects to the login page, the API answers 401), `403`, or `ok` (past the permission
check: any other answer but a 500)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.test import Client

from console.access import ADMIN, OPERATOR, VIEWER, has_role
from tests.drills.hostile import Route, routes

PRINCIPALS = ("anonymous", "viewer", "operator", "admin", "revoked token", "logged-out session", "no role")
ROLE_OF = {"viewer": VIEWER, "operator": OPERATOR, "admin": ADMIN}
# "no role": signed in, in no role group (a new account before an admin gives it one): refused, not sent to log in.
USERS = {"viewer": "viewer", "operator": "operator", "admin": "admin", "no role": "outsider"}

# Routes anyone reaches (the login page, liveness), and those a login reaches whatever its role.
# The sign-in pages: why a sign-in was refused, and the way to an identity provider (its callbacks answer only where
# providers are configured).
PUBLIC = {"login/", "login/refused/", "oidc/<str:name>/authenticate/", "healthz"}
# Public pages whose answer is a refusal by design: the page that says why a sign-in was refused is a 403 for anyone.
REFUSAL_PAGES = {"login/refused/"}
ANY_LOGIN = {"api/<path:rest>", "logout/"}
# Methods whose role is stricter than the route's (checked inside the view): reading is the viewer's, writing not.
METHOD_ROLE = {
    ("api/v1/operations", "POST"): OPERATOR,
    ("api/v1/alert-rules", "POST"): ADMIN,
    ("metrics", "GET"): VIEWER,
    # The token the drill names is the admin's: revoking another person's token is the admin's (one's own, anyone's).
    ("tokens/<int:token_id>/revoke", "POST"): ADMIN,
}
# Left out, and why: logging out is what the logged-out principal is made with; Django's admin has its own staff check
# (a role group is not staff) and its own tests.
SKIPPED = {"logout/"}


@dataclass
class Matrix:
    rows: dict[str, dict[str, str]] = field(default_factory=dict)  # "METHOD pattern" -> principal -> "ok"/"WRONG …"
    wrong: list[str] = field(default_factory=list)
    cells: int = 0

    def add(self, row: str, principal: str, expected: str, got: str) -> None:
        self.cells += 1
        ok = expected == got
        self.rows.setdefault(row, {})[principal] = expected if ok else f"WRONG:{got}"
        if not ok:
            self.wrong.append(f"{row} as {principal}: expected {expected}, got {got}")

    def render(self) -> str:
        width = max(len(r) for r in self.rows)
        principals = sorted({p for cells in self.rows.values() for p in cells}, key=_order)
        lines = [" " * width + " | " + " | ".join(f"{p:^10.10}" for p in principals)]
        for row, cells in self.rows.items():
            lines.append(f"{row:<{width}} | " + " | ".join(f"{cells.get(p, '–'):^10.10}" for p in principals))
        return "\n".join(lines)


def _order(principal: str) -> int:
    known = (*PRINCIPALS, "session without CSRF", "no reason", "with reason")
    return known.index(principal) if principal in known else len(known)


def expected(route: Route, method: str, principal: str) -> str:
    if route.pattern in REFUSAL_PAGES:
        return "403"
    if route.pattern in PUBLIC:
        return "ok"
    if principal in ("anonymous", "revoked token", "logged-out session"):
        return "login"
    if route.pattern in ANY_LOGIN:
        return "ok"
    role = METHOD_ROLE.get((route.pattern, method)) or route.role
    if role is None:
        raise AssertionError(f"{route.pattern} declares no role: add require_role (or list it in PUBLIC/ANY_LOGIN)")
    return "ok" if _has(principal, role) else "403"


def _has(principal: str, role: str) -> bool:
    from django.contrib.auth.models import User

    return has_role(User.objects.get(username=USERS[principal]), role)


def verdict(route: Route, response) -> str:
    status = response.status_code
    if status >= 500:
        return "500"
    if status == 401:
        return "login"
    if status == 302 and response["Location"].startswith("/login/"):
        return "login"
    if status == 403:
        # A CSRF refusal is not a role check: a token-authenticated or exempt request never meets one here.
        return "403"
    return "ok"


class Principals:
    """A client per principal: a session for pages, a bearer token for the API (as machine clients call it)."""

    def __init__(self, world):
        from django.utils import timezone

        from console.models import ApiToken

        self.world = world
        self.tokens = {name: world.token(getattr(world, user)) for name, user in USERS.items()}
        revoked = world.token(world.admin)
        ApiToken.objects.filter(token_hash=ApiToken.hash(revoked)).update(revoked_at=timezone.now())
        self.revoked = revoked
        # A session that logged out: its cookie kept, as a browser tab that was not reloaded would send it.
        before = world.client(world.admin)
        cookie = before.cookies["sessionid"].value
        assert before.post("/logout/").status_code == 302
        self.logged_out = Client()
        self.logged_out.cookies["sessionid"] = cookie

    def request(self, principal: str, route: Route, method: str, url: str):
        headers = {}
        if principal == "anonymous":
            client = Client()
        elif principal == "revoked token":
            client, headers = Client(), {"Authorization": f"Bearer {self.revoked}"}
        elif principal == "logged-out session":
            client = self.logged_out
        elif route.api:
            client, headers = Client(), {"Authorization": f"Bearer {self.tokens[principal]}"}
        else:
            client = self.world.client(getattr(self.world, USERS[principal]))
        call = getattr(client, method.lower())
        if method == "GET":
            return call(url, headers=headers)
        return (
            call(url, {}, content_type="application/json" if route.api else None, headers=headers)
            if route.api
            else call(url, {}, headers=headers)
        )


def http_matrix(world, sane: dict[str, str]) -> Matrix:
    import logging

    matrix = Matrix()
    principals = Principals(world)
    quiet = logging.getLogger("django.request")
    level, quiet.level = quiet.level, logging.CRITICAL
    try:
        for route in routes():
            if route.pattern in SKIPPED:
                continue
            url = route.url({name: sane.get(name, "x") for _, name in route.params})
            for method in sorted(route.methods & {"GET", "POST", "DELETE"}):
                row = f"{method} /{route.pattern}"
                for principal in PRINCIPALS:
                    response = principals.request(principal, route, method, url)
                    matrix.add(row, principal, expected(route, method, principal), verdict(route, response))
                if method != "GET" and route.pattern not in PUBLIC:
                    _csrf_cells(matrix, world, route, method, url, row)
    finally:
        quiet.level = level
    return matrix


def _csrf_cells(matrix: Matrix, world, route: Route, method: str, url: str, row: str) -> None:
    """A session write without the CSRF token is refused (403) even for an admin; the API with a bearer token needs
    none (a browser never sends one on its own)."""
    client = world.client(world.admin, enforce_csrf=True)
    call = getattr(client, method.lower())
    response = call(url, {}, content_type="application/json") if route.api else call(url, {})
    got = "403" if response.status_code == 403 else f"{response.status_code}"
    matrix.add(row, "session without CSRF", "403", got)


def socket_routes() -> list[str]:
    from console.routing import websocket_urlpatterns

    return [str(p.pattern) for p in websocket_urlpatterns]


def socket_cells(matrix: Matrix, world) -> None:
    """Each WebSocket route through the whole ASGI application (origin check, session auth, the consumer), with the
    principal's session cookie; a token or a logged-out session's cookie authenticates nobody."""
    from asgiref.sync import async_to_sync
    from channels.testing import WebsocketCommunicator

    from console.asgi import application

    principals = Principals(world)
    cookies = {name: world.client(getattr(world, user)).cookies["sessionid"].value for name, user in USERS.items()}
    cookies["logged-out session"] = principals.logged_out.cookies["sessionid"].value

    async def connect(path: str, cookie: str | None, token: str | None) -> bool:
        headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
        if cookie:
            headers.append((b"cookie", f"sessionid={cookie}".encode()))
        if token:
            headers.append((b"authorization", f"Bearer {token}".encode()))
        communicator = WebsocketCommunicator(application, path, headers=headers)
        connected, _ = await communicator.connect(timeout=10)
        await communicator.disconnect()
        return connected

    for route in socket_routes():
        for principal in PRINCIPALS:
            token = principals.revoked if principal == "revoked token" else None
            accepted = async_to_sync(connect)("/" + route, cookies.get(principal), token)
            want = "ok" if principal in ROLE_OF else "403" if principal == "no role" else "login"
            refused = "403" if principal == "no role" else "login"  # both close the socket; the cell says who asked
            matrix.add(f"WS   /{route}", principal, want, "ok" if accepted else refused)


# Form posts that act, each with a body that is valid but for its reason. Without the reason nothing may happen (no
# audit entry, no operation); with it, the same body acts — so the cell proves the reason is what was missing.
def reason_bodies(sane: dict[str, str]) -> dict[str, tuple[str, dict]]:
    from datetime import timedelta

    from django.utils import timezone

    from sagas.actions import freeze_selection

    dl, event, rule, op = sane["dead_letter_id"], sane["event_pk"], sane["rule_id"], sane["operation_id"]
    selection = freeze_selection("resolve", [sane["saga_id"]])["selection"]
    until = (timezone.now() + timedelta(hours=1)).isoformat()
    return {
        "operations/start": ("/operations/start", {"kind": "noop", "items": "1"}),
        "operations/<uuid:operation_id>/control": (f"/operations/{op}/control", {"action": "cancel"}),
        # Resolve: compensating needs a command route, which the drill's saga type has none of.
        "sagas/<str:saga_id>/actions/<str:action>": ("/sagas/drill-1/actions/resolve", {"note": "fixed by hand"}),
        "sagas/bulk-start": (
            "/sagas/bulk-start",
            {"action": "resolve", "note": "fixed by hand", "selection": selection},
        ),
        # Edited first: the replay and the archive below leave the letter where it cannot be edited again.
        "dead-letters/<int:dead_letter_id>/edit-replay": (
            f"/dead-letters/{dl}/edit-replay",
            {"body": '{"a": 2}', "headers": "{}"},
        ),
        "dead-letters/replay": ("/dead-letters/replay", {"ids": dl}),
        "dead-letters/status": ("/dead-letters/status", {"ids": dl, "status": "archived"}),
        "outbox/retry": ("/outbox/retry", {"ids": event}),
        "outbox/<int:event_pk>/skip": (f"/outbox/{event}/skip", {}),
        "outbox/destination/<str:action>": ("/outbox/destination/pause", {"destination": "kafka://drill.events"}),
        "consumers/alerts/<int:rule_id>/silence": (f"/consumers/alerts/{rule}/silence", {"until": until}),
        "consumers/alerts/<int:rule_id>/delete": (f"/consumers/alerts/{rule}/delete", {}),
    }


def reason_cells(matrix: Matrix, world, sane: dict[str, str]) -> None:
    from console.models import AuditEntry, Operation

    def acted(url: str, body: dict) -> bool:
        before = AuditEntry.objects.count(), Operation.objects.count()
        world.client(world.admin).post(url, body)
        return (AuditEntry.objects.count(), Operation.objects.count()) != before

    for pattern, (url, body) in reason_bodies(sane).items():
        row = f"POST /{pattern}"
        key = {"idempotency_key": f"drill-{pattern}"}
        matrix.add(row, "no reason", "refused", "acted" if acted(url, {**body, **key}) else "refused")
        key = {"idempotency_key": f"drill-{pattern}-2"}
        matrix.add(row, "with reason", "acted", "acted" if acted(url, {**body, **key, "reason": "drill"}) else "no")
