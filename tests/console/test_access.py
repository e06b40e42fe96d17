"""Every URL pattern: anonymous → login redirect (pages) or 401 (API); viewer → 403 on every mutating endpoint."""

import uuid

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

# Reachable anonymously on purpose: the login page and why a sign-in was refused, the way to an identity provider
# (its callbacks exist only where providers are configured), and the liveness probe a load balancer calls.
PUBLIC = {"login/", "login/refused/", "oidc/<str:name>/authenticate/", "healthz"}
# Writes a viewer may make: logging out, and managing their own API tokens.
VIEWER_WRITES = {"logout/", "tokens/create", "tokens/<int:token_id>/revoke"}
# POSTs that change nothing: a pasted schema checked against an event type's current version (formats/).
VIEWER_CHECKS = {"schemas/<path:event_type>/", "api/v1/schemas/<path:event_type>/compatibility"}
# The catch-all that turns unknown API paths into a JSON 404.
CATCH_ALL = {"api/<path:rest>"}
SAMPLES = {
    "uuid": lambda: str(uuid.uuid4()),
    "int": lambda: "1",
    "str": lambda: "x",
    "path": lambda: "x/y",
    "slug": lambda: "x",
}


def _patterns(resolver=None, prefix=""):
    resolver = resolver or get_resolver()
    for p in resolver.url_patterns:
        route = prefix + str(p.pattern)
        if isinstance(p, URLResolver):
            yield from _patterns(p, route)
        elif isinstance(p, URLPattern):
            yield route, p


def _sample_url(route: str, pattern: URLPattern) -> str:
    converters = pattern.pattern.converters
    url = route
    for name, conv in converters.items():
        kind = type(conv).__name__.replace("Converter", "").lower()
        sample = SAMPLES.get(kind, lambda: "x")()
        url = url.replace(f"<{kind}:{name}>", sample).replace(f"<{name}>", sample)
    return "/" + url


def _routes():
    return [(route, _sample_url(route, p)) for route, p in _patterns() if not route.startswith("admin/")]


def test_it_enumerates_the_console_routes():
    routes = dict(_routes())
    assert "api/v1/operations" in routes and "operations/start" in routes and "" in routes


def _writes(route: str) -> bool:
    """Whether the route takes a POST (its view's declared methods: require_POST, api(methods=…))."""
    from tests.drills.hostile import Route

    pattern = dict(_patterns())[route]
    return "POST" in Route(route, pattern.callback).methods


# Every case asserts: the routes a check does not apply to are listed apart and checked for what they do instead.
PROTECTED = [(route, url) for route, url in _routes() if route not in PUBLIC]
MUTATING = [(r, u) for r, u in PROTECTED if r not in VIEWER_WRITES | CATCH_ALL | VIEWER_CHECKS and _writes(r)]
READ_ONLY = [(r, u) for r, u in PROTECTED if r not in VIEWER_WRITES | CATCH_ALL and not _writes(r)]


@pytest.mark.parametrize("route,url", PROTECTED)
def test_it_requires_login_everywhere(client, db, route, url):
    for method in ("get", "post"):
        response = getattr(client, method)(url)
        if url.startswith("/api/") or url.startswith("/metrics"):
            assert response.status_code == 401, (method, url, response.status_code)
            assert response["Content-Type"].startswith("application/json")
            assert "error" in response.json()
        else:
            assert response.status_code == 302, (method, url, response.status_code)
            assert response["Location"].startswith("/login/")


def test_it_serves_the_public_routes_without_a_login(client, db):
    assert client.get("/login/").status_code == 200
    assert client.get("/healthz")["Content-Type"].startswith("application/json")  # 200 or 503, never a redirect


@pytest.mark.parametrize("route,url", MUTATING)
def test_it_refuses_every_mutating_endpoint_to_a_viewer(world, route, url):
    client = world.client(world.viewer)
    response = client.post(url, data="{}", content_type="application/json")
    # The role is checked before any lookup, so even a made-up id answers 403, not 404.
    assert response.status_code == 403, (url, response.status_code)


@pytest.mark.parametrize("route,url", READ_ONLY)
def test_it_answers_a_post_to_a_read_only_endpoint_with_405(world, route, url):
    response = world.client(world.viewer).post(url, data="{}", content_type="application/json")
    assert response.status_code == 405, (url, response.status_code)
    assert response.content  # and says why (console.inputs.ExplainEmptyErrorsMiddleware)


def test_it_lets_a_viewer_manage_only_their_own_tokens(world):
    client = world.client(world.viewer)
    assert client.post("/tokens/create", {"name": "mine"}).status_code == 302
    others = world.token(world.operator)
    from console.models import ApiToken

    row = ApiToken.objects.get(token_hash=ApiToken.hash(others))
    assert client.post(f"/tokens/{row.pk}/revoke", {"reason": "r"}).status_code == 403


def test_it_answers_unknown_api_paths_with_a_json_404(world):
    response = world.client(world.viewer).post("/api/v1/nothing-here", data="{}", content_type="application/json")
    assert response.status_code == 404 and response.json()["error"]


def test_it_enforces_csrf_on_browser_posts(world):
    client = world.client(world.operator, enforce_csrf=True)
    response = client.post("/operations/start", {"kind": "noop", "reason": "r", "idempotency_key": "k1"})
    assert response.status_code == 403
    response = client.post(
        "/api/v1/operations",
        data={"kind": "noop", "reason": "r", "idempotency_key": "k2"},
        content_type="application/json",
    )
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]


def test_it_needs_no_csrf_with_a_bearer_token(world):
    token = world.token(world.operator)
    client = world.client(None, enforce_csrf=True)
    response = client.post(
        "/api/v1/operations",
        data={"kind": "noop", "reason": "r", "idempotency_key": "k3", "parameters": {"items": 1, "delay_ms": 0}},
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201, response.content


def test_it_answers_401_for_a_bad_token(world):
    client = world.client(None)
    response = client.get("/api/v1/operations", headers={"Authorization": "Bearer sy_nope"})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid or revoked API token"


def test_it_shows_an_outsider_no_data(world):
    client = world.client(world.outsider)
    assert client.get("/operations/").status_code == 403
    assert client.get("/api/v1/operations").status_code == 403


def test_it_answers_json_for_an_unknown_api_path(world):
    response = world.client(world.viewer).get("/api/v1/nope")
    assert response.status_code == 404
    assert response.json() == {"error": "not found"}
