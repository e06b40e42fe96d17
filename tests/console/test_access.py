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


@pytest.mark.parametrize("route,url", _routes())
def test_it_requires_login_everywhere(client, db, route, url):
    if route in PUBLIC:
        return
    for method in ("get", "post"):
        response = getattr(client, method)(url)
        if url.startswith("/api/") or url.startswith("/metrics"):
            assert response.status_code == 401, (method, url, response.status_code)
            assert response["Content-Type"].startswith("application/json")
            assert "error" in response.json()
        else:
            assert response.status_code == 302, (method, url, response.status_code)
            assert response["Location"].startswith("/login/")


@pytest.mark.parametrize("route,url", _routes())
def test_it_refuses_every_mutating_endpoint_to_a_viewer(world, route, url):
    if route in PUBLIC or route in VIEWER_WRITES or route in CATCH_ALL or route in VIEWER_CHECKS:
        return
    client = world.client(world.viewer)
    response = client.post(url, data="{}", content_type="application/json")
    if response.status_code == 405:
        return  # read-only endpoint
    # The role is checked before any lookup, so even a made-up id answers 403, not 404.
    assert response.status_code == 403, (url, response.status_code)


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
