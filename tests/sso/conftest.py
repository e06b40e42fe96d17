"""The sign-in world: a real OIDC provider (tests/sso/idp.py) and consoles (daphne) configured to use it."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from console.identity import oidc_providers_from_env
from tests.conftest import ROOT, _free_port, _wait_http

ROLES = {"admin": ["admins"], "operator": ["ops", "re:team-.*-oncall"], "viewer": ["re:dev-.*"]}


class Idp:
    def __init__(self, url: str):
        self.url = url

    def set_user(self, sub: str, groups: list[str] | None, **claims) -> None:
        """The user as the provider knows them from now on (the next sign-in or refresh sees it)."""
        body = {"preferred_username": sub.removesuffix("-sub"), "email": f"{sub}@example.org", **claims}
        if groups is not None:
            body["groups"] = groups
        requests.put(f"{self.url}/users/{sub}", json=body, timeout=5).raise_for_status()

    def revoke(self, sub: str) -> None:
        requests.post(f"{self.url}/users/{sub}/revoke-tokens", timeout=5).raise_for_status()


def _stop(procs):
    for proc in procs:
        try:
            os.killpg(proc.pid, 15)
        except ProcessLookupError:
            pass
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(5)


@pytest.fixture(scope="session")
def idp(tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("idp") / "idp.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.sso.idp", str(port)],
        cwd=ROOT,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_http(f"http://127.0.0.1:{port}/.well-known/openid-configuration", 30, proc, log)
        yield Idp(f"http://127.0.0.1:{port}")
    finally:
        _stop([proc])


@pytest.fixture(scope="session")
def providers_json(idp) -> str:
    """Two providers on one real OIDC provider (two client registrations): a button each."""
    return json.dumps(
        [
            {"name": "mock", "label": "Sign in with Mock IdP", "issuer": idp.url, "client_id": "switchyard",
             "client_secret": "s3cret-client", "roles": ROLES},
            {"name": "backup", "label": "Sign in with Backup IdP", "issuer": idp.url, "client_id": "switchyard-2",
             "client_secret": "other-secret", "roles": ROLES, "roles_claim": "groups"},
        ]
    )  # fmt: skip


@pytest.fixture
def sso_settings(settings, providers_json):
    """This process's settings as the consoles': revalidation runs here, in the test."""
    settings.SSO_OIDC_PROVIDERS = oidc_providers_from_env({}, providers_json)
    # The consoles keep sessions in PostgreSQL behind Redis (SESSION_STORE=redis): so does this process, so that a
    # session it ends is gone from the cache the consoles read first.
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": settings.REDIS_URL,
            "KEY_PREFIX": f"{settings.NAMESPACE}:cache",
        }
    }
    return settings


class Consoles:
    def __init__(self, urls: list[str], logs: Path):
        self.urls = urls
        self.logs = logs

    @property
    def url(self) -> str:
        return self.urls[0]


@pytest.fixture(scope="session")
def sso_consoles(django_db_setup, django_db_blocker, tmp_path_factory, providers_json):
    """Two daphne processes on two ports, on the test database, with the providers configured: behind a load
    balancer they would be two replicas, so a session made by one must work on the other."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    env = dict(os.environ)
    auth = f"{db['USER']}:{db['PASSWORD']}" if db.get("PASSWORD") else db["USER"]
    env["DATABASE_URL"] = f"postgresql://{auth}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env["PYTHONUNBUFFERED"] = "1"
    env["OIDC_PROVIDERS"] = providers_json
    env["SESSION_STORE"] = "redis"
    logs = tmp_path_factory.mktemp("sso-consoles")
    bin_dir = Path(sys.executable).parent
    procs, urls = [], []
    try:
        for index in range(2):
            port = _free_port()
            log = logs / f"daphne{index}.log"
            procs.append(
                subprocess.Popen(
                    [str(bin_dir / "daphne"), "-b", "127.0.0.1", "-p", str(port), "console.asgi:application"],
                    cwd=ROOT,
                    env=env,
                    stdout=log.open("w"),
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        for proc, url, index in zip(procs, urls, range(2), strict=True):
            _wait_http(f"{url}/healthz", 30, proc, logs / f"daphne{index}.log")
        yield Consoles(urls, logs)
    finally:
        _stop(procs)


def sso_login(page, console_url: str, sub: str, provider: str = "mock") -> None:
    """Through the login page's button, the provider's own authorization form, and back."""
    page.goto(f"{console_url}/login/")
    page.click(f"#sign-in-{provider}")
    try:
        page.wait_for_url(lambda url: "/oauth2/authorize" in url, timeout=15_000)
    except Exception as e:
        raise AssertionError(f"sign-in stopped at {page.url}: {page.content()[:2000]}") from e
    form = page.locator("form").first
    form.locator("input[name=sub]").fill(sub)
    form.locator("button[type=submit]").click()
    try:
        page.wait_for_url(lambda url: url.startswith(console_url) and "/oidc/" not in url, timeout=15_000)
    except Exception as e:
        raise AssertionError(f"sign-in stopped at {page.url}: {page.content()[:2000]}") from e


def wait_until(check, seconds: float = 15):
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)
