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


# --- a real directory: Debian's slapd with a small tree of its own ---

BASE = "dc=example,dc=org"
ROOT_DN = f"cn=admin,{BASE}"
ROOT_PASSWORD = "directory-secret"
LDAP_PASSWORD = "ldap pass 123"
PEOPLE = ("olga", "vera", "nobody", "admin")
GROUPS = {"ops": ["olga", "admin"], "dev-team": ["vera"], "admins": []}

SLAPD_CONF = """
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {dir}/slapd.pid
argsfile {dir}/slapd.args
database mdb
maxsize 10485760
suffix "{base}"
rootdn "{root}"
rootpw {password}
directory {dir}/data
"""


class Directory:
    def __init__(self, uri: str):
        self.uri = uri

    def connect(self):
        import ldap

        conn = ldap.initialize(self.uri)
        conn.simple_bind_s(ROOT_DN, ROOT_PASSWORD)
        return conn

    def group_dn(self, name: str) -> str:
        return f"cn={name},ou=groups,{BASE}"

    def user_dn(self, uid: str) -> str:
        return f"uid={uid},ou=people,{BASE}"

    def set_members(self, group: str, uids: list[str]) -> None:
        import ldap

        # groupOfNames must have a member: the root DN stands in for "nobody".
        members = [self.user_dn(u).encode() for u in uids] or [ROOT_DN.encode()]
        conn = self.connect()
        conn.modify_s(self.group_dn(group), [(ldap.MOD_REPLACE, "member", members)])
        conn.unbind_s()


@pytest.fixture(scope="session")
def slapd(tmp_path_factory):
    import ldap

    if not Path("/usr/sbin/slapd").exists():
        pytest.fail("/usr/sbin/slapd is missing: run `make ldap` (make test does)")
    work = tmp_path_factory.mktemp("slapd")
    (work / "data").mkdir()
    conf = work / "slapd.conf"
    conf.write_text(SLAPD_CONF.format(dir=work, base=BASE, root=ROOT_DN, password=ROOT_PASSWORD))
    port = _free_port()
    log = work / "slapd.log"
    # -d keeps it in the foreground (so the test owns the process); 0 logs nothing but errors.
    proc = subprocess.Popen(
        ["/usr/sbin/slapd", "-f", str(conf), "-h", f"ldap://127.0.0.1:{port}/", "-d", "0"],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    directory = Directory(f"ldap://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                conn = directory.connect()
                break
            except ldap.SERVER_DOWN:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"slapd did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.1)
        conn.add_s(BASE, [("objectClass", [b"dcObject", b"organization"]), ("dc", [b"example"]), ("o", [b"Ex"])])
        for ou in ("people", "groups"):
            conn.add_s(f"ou={ou},{BASE}", [("objectClass", [b"organizationalUnit"]), ("ou", [ou.encode()])])
        for uid in PEOPLE:
            conn.add_s(
                directory.user_dn(uid),
                [
                    ("objectClass", [b"inetOrgPerson"]),
                    ("uid", [uid.encode()]),
                    ("cn", [uid.title().encode()]),
                    ("sn", [b"Tester"]),
                    ("mail", [f"{uid}@example.org".encode()]),
                    ("userPassword", [LDAP_PASSWORD.encode()]),
                ],
            )
        for name, uids in GROUPS.items():
            members = [directory.user_dn(u).encode() for u in uids] or [ROOT_DN.encode()]
            conn.add_s(
                directory.group_dn(name),
                [("objectClass", [b"groupOfNames"]), ("cn", [name.encode()]), ("member", members)],
            )
        conn.unbind_s()
        yield directory
    finally:
        _stop([proc])


LDAP_ROLES = {"admin": ["admins"], "operator": [f"cn=ops,ou=groups,{BASE}"], "viewer": ["re:dev-.*"]}


@pytest.fixture
def ldap_settings(settings, slapd):
    """This process signs in against the directory: users by uid under ou=people, groupOfNames under ou=groups."""
    from console.identity import django_auth_ldap_settings, ldap_from_env

    env = {
        "LDAP_SERVER_URI": slapd.uri,
        "LDAP_BIND_DN": ROOT_DN,
        "LDAP_USER_SEARCH_BASE": f"ou=people,{BASE}",
        "LDAP_GROUP_SEARCH_BASE": f"ou=groups,{BASE}",
        "LDAP_ROLES": json.dumps(LDAP_ROLES),
    }
    directory = ldap_from_env(env, ROOT_PASSWORD)
    settings.SSO_LDAP = directory
    for key, value in django_auth_ldap_settings(directory).items():
        setattr(settings, key, value)
    settings.AUTHENTICATION_BACKENDS = ["console.ldap_auth.DirectoryBackend", "console.sign_in.LocalPasswordBackend"]
    for name, uids in GROUPS.items():  # each test starts from the same memberships
        slapd.set_members(name, uids)
    return settings
