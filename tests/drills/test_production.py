"""Production settings (issue 14): with DEBUG off and outside the tests, `manage.py check --deploy` is clean; cookies
are secure-only, HSTS is on, `testserver` is not an allowed host, the no-op operation cannot be started; login attempts
are rate-limited (django-axes) everywhere."""

import json
import os
import secrets
import subprocess
import sys

import pytest
from django.test import Client, override_settings

from tests.conftest import PASSWORD, ROOT

# What the tests and `make run` set that a deployment does not (tests/env.py, tools/run.py).
DEV_ONLY = ("SWITCHYARD_TESTING", "DEBUG", "SWITCHYARD_HTTPS", "DJANGO_ALLOW_ASYNC_UNSAFE")


def production_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DEV_ONLY}
    return {**env, "DEBUG": "false", "SECRET_KEY": secrets.token_urlsafe(50), **extra}


def test_it_passes_the_deploy_check_with_debug_off():
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


SHOW = """
import json, django
django.setup()
from django.conf import settings
from console.operations import get_kind
print(json.dumps({
    "hosts": settings.ALLOWED_HOSTS, "session": settings.SESSION_COOKIE_SECURE, "csrf": settings.CSRF_COOKIE_SECURE,
    "hsts": settings.SECURE_HSTS_SECONDS, "redirect": settings.SECURE_SSL_REDIRECT,
    "noop": get_kind("noop").can_start(), "backends": settings.AUTHENTICATION_BACKENDS,
}))
"""


def _settings(**env: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", SHOW],
        cwd=ROOT,
        env=production_env(DJANGO_SETTINGS_MODULE="console.settings", **env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_it_hardens_cookies_hosts_and_operations_in_production():
    shown = _settings()
    assert "testserver" not in shown["hosts"] and "localhost" in shown["hosts"]
    assert shown["session"] and shown["csrf"] and shown["redirect"]
    assert shown["hsts"] >= 31_536_000
    assert shown["noop"] is False
    assert shown["backends"][0] == "axes.backends.AxesStandaloneBackend"


def test_it_serves_plain_http_only_when_told_to():
    shown = _settings(SWITCHYARD_HTTPS="false")
    assert not shown["session"] and not shown["redirect"] and shown["hsts"] == 0
    assert "testserver" not in shown["hosts"]


@pytest.mark.django_db
def test_it_refuses_the_noop_operation_where_it_is_not_startable(world):
    client = world.client(world.operator)
    body = {"kind": "noop", "parameters": {"items": 1}, "reason": "drill", "idempotency_key": "k-noop"}
    with override_settings(OPERATION_NOOP_STARTABLE=False):
        refused = client.post("/api/v1/operations", body, content_type="application/json")
        page = client.get("/operations/")
    assert refused.status_code == 400 and "kind" in refused.json()["fields"], refused.content
    assert b'value="noop"' not in page.content
    started = client.post("/api/v1/operations", {**body, "idempotency_key": "k2"}, content_type="application/json")
    assert started.status_code in (200, 201, 202), started.content


@pytest.mark.django_db
def test_it_locks_out_a_username_and_address_after_five_failed_logins(world):
    client = Client(REMOTE_ADDR="203.0.113.7")
    for _ in range(4):
        failed = client.post("/login/", {"username": "operator", "password": "wrong"})
        assert failed.status_code == 200  # the login page again, with its error
    assert client.post("/login/", {"username": "operator", "password": "wrong"}).status_code == 429  # the fifth
    locked = client.post("/login/", {"username": "operator", "password": PASSWORD})
    assert locked.status_code == 429 and b"too many" in locked.content.lower(), locked.content[:300]
    # Another address is not locked out by someone else's failures, and logs in.
    elsewhere = Client(REMOTE_ADDR="198.51.100.9").post("/login/", {"username": "operator", "password": PASSWORD})
    assert elsewhere.status_code == 302
