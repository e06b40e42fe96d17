"""One small named world: viewer, operator, admin, outsider — plus a live console for browser tests."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.contrib.auth.models import Group, User
from django.test import Client

from console.models import ApiToken

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple"


def _flush_retrying_deadlocks():
    """A transactional test ends with TRUNCATE of every table while the live console's daphne and worker may still be
    reading a few of them (a live socket's last refresh): PostgreSQL then picks one side as a deadlock victim. The
    truncate is only the test's clean-up, so it is tried again rather than failing the test it follows."""
    from django.db.utils import OperationalError
    from django.test import testcases

    original = testcases.TransactionTestCase._fixture_teardown

    def teardown(self):
        for attempt in range(5):
            try:
                return original(self)
            except Exception as exc:  # flush wraps the OperationalError in a CommandError
                cause = exc if isinstance(exc, OperationalError) else exc.__cause__ or exc.__context__
                if attempt == 4 or "deadlock detected" not in str(cause):
                    raise
                time.sleep(0.2 * (attempt + 1))

    testcases.TransactionTestCase._fixture_teardown = teardown


_flush_retrying_deadlocks()


def pytest_collection_modifyitems(config, items):
    """Browser tests last: their session-wide Celery worker and Playwright's event loop must not meet the others."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


def pytest_sessionfinish(session, exitstatus):
    """The machine's NATS outlives the run: remove the durables this run's ingest workers made on shared streams
    (their names carry the run's SWITCHYARD_NAMESPACE), so `make run` afterwards does not list them as consumers."""
    from django.conf import settings

    from brokers.base import BrokerError
    from console import brokers

    try:
        nats = brokers.defaults().get("nats")
        for stream in [d.name for d in nats.list_destinations()] if nats else []:
            for consumer in nats.consumer_info(stream):
                if settings.NAMESPACE in consumer.name:
                    nats.delete_consumer(stream, consumer.name)
    except BrokerError:
        pass  # clean-up is best effort; a broker that went away has nothing to clean


def make_user(username: str, role: str | None) -> User:
    user = User.objects.create_user(username=username, password=PASSWORD)
    if role:
        # get_or_create: transactional tests flush the groups the migration made.
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


class World:
    def __init__(self):
        self.viewer = make_user("viewer", "viewer")
        self.operator = make_user("operator", "operator")
        self.admin = make_user("admin", "admin")
        self.outsider = make_user("outsider", None)

    def client(self, user: User | None, *, enforce_csrf: bool = False) -> Client:
        client = Client(enforce_csrf_checks=enforce_csrf)
        if user is not None:
            client.force_login(user)
        return client

    def token(self, user: User) -> str:
        value = ApiToken.generate()
        ApiToken.objects.create(user=user, name="test", prefix=value[:10], token_hash=ApiToken.hash(value))
        return value


@pytest.fixture
def world(db) -> World:
    return World()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} server exited early:\n{log.read_text()[-3000:]}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def live_console(django_db_setup, django_db_blocker, tmp_path_factory):
    """daphne + a Celery worker (prefork) in their own processes, on the test database.

    Tests that use it must use `transactional_db` so that what they write is committed and visible to both.
    """
    from django.conf import settings

    db = settings.DATABASES["default"]
    env = dict(os.environ)
    env["DATABASE_URL"] = f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    if db.get("PASSWORD"):
        env["DATABASE_URL"] = f"postgresql://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env["PYTHONUNBUFFERED"] = "1"
    logs = tmp_path_factory.mktemp("live")
    port = _free_port()
    bin_dir = Path(sys.executable).parent
    procs: list[subprocess.Popen] = []

    def spawn(name: str, argv: list[str]) -> tuple[subprocess.Popen, Path]:
        log = logs / f"{name}.log"
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
        )
        procs.append(proc)
        return proc, log

    web, web_log = spawn(
        "daphne", [str(bin_dir / "daphne"), "-b", "127.0.0.1", "-p", str(port), "console.asgi:application"]
    )
    worker, worker_log = spawn(
        "worker",
        [
            str(bin_dir / "celery"),
            "-A",
            "console",
            "worker",
            "-Q",
            settings.CELERY_TASK_DEFAULT_QUEUE,
            "-c",
            "2",
            "-l",
            "INFO",
        ],
    )
    try:
        _wait_http(f"http://127.0.0.1:{port}/healthz", 30, web, web_log)
        yield LiveConsole(f"http://127.0.0.1:{port}", logs)
    finally:
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


class LiveConsole:
    def __init__(self, url: str, logs: Path):
        self.url = url
        self.logs = logs

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text()


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def chromium():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `apt-get install -y chromium` (make test does)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    context = chromium.new_context()
    page = context.new_page()
    yield page
    context.close()


def wait_for_js(page, expression: str, timeout_ms: int = 10_000) -> None:
    """Wait until `expression` is truthy in the page. Playwright's wait_for_function evaluates its predicate with eval
    inside the page, which the Content-Security-Policy (script-src 'self') refuses; page.evaluate goes through the
    DevTools protocol, which the policy does not cover."""
    deadline = time.monotonic() + timeout_ms / 1000
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"{expression} still false after {timeout_ms} ms")
        page.wait_for_timeout(50)


def login(page, live_console: LiveConsole, username: str) -> None:
    page.goto(f"{live_console.url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_console.url}/")


# The page's live socket is open once htmx's ws extension says so; the server joins the socket to its groups before it
# accepts, so a broadcast after this reaches the page. Tests wait for it instead of sleeping (issue 14).
WS_OPEN_SCRIPT = "window.wsOpen = false; document.addEventListener('htmx:wsOpen', () => { window.wsOpen = true })"


def watch_socket(page) -> None:
    """Before the page loads: note when its live socket opens (wait_for_socket)."""
    page.add_init_script(WS_OPEN_SCRIPT)


def wait_for_socket(page, timeout_ms: int = 10_000) -> None:
    wait_for_js(page, "window.wsOpen === true", timeout_ms)
