"""The first hour, from a clean copy: `make run` in the background; the README's command line in a plain shell
(`env -i PATH=...`), which before it says in one line what is missing and while it runs reaches the demo's database and
brokers through .run/env; RabbitMQ's known queues listed without its management API; the dashboard's charts with the
demo's data, drawn in a browser; the Node.js example's saga shown and compensated; Ctrl-C leaves nothing behind.

The launcher runs in a copy of the working tree (what a fresh clone holds), so its `.run/` is the clone's own and the
default paths are the ones exercised. It uses this test session's Kafka, SQS and Redis and a database of its own."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import uuid
from pathlib import Path

import psutil
import psycopg
import pytest
import requests

from tools.services import free_port

ROOT = Path(__file__).resolve().parents[2]
PLAIN_SHELL = {"PATH": "/usr/local/bin:/usr/bin:/bin"}


def _clean_copy(target: Path) -> Path:
    """The files a clone would have (tracked, plus new ones not ignored), without .venv or .run."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def _manage(clone: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=clone,
        env=PLAIN_SHELL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _database_url(name: str) -> str:
    parts = urllib.parse.urlsplit(os.environ["DATABASE_URL"])
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


# Marked browser for its place in the run (Playwright's event loop must not meet the other tests), as tests/browser's.
@pytest.mark.browser
def test_it_runs_the_readme_commands_in_a_plain_shell_beside_make_run(tmp_path, page):
    clone = _clean_copy(tmp_path / "clone")
    readme = (clone / "README.md").read_text()
    for documented in ("manage.py create_api_token admin", "manage.py saga resolve", "manage.py dlq replay"):
        assert documented in readme

    # Before `make run`: no traceback, one line that names what is missing.
    before = _manage(clone, "create_api_token", "admin")
    assert before.returncode == 2
    assert "Traceback" not in before.stderr
    assert before.stderr.strip().splitlines() == [
        "manage.py: configuration incomplete: SECRET_KEY must be set when DEBUG is off "
        "(no .run/env from a running `make run`; else see the README's Settings)"
    ]

    database = f"sy_cli_{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    # Its own namespace (Celery queue, channel and cache prefixes): the suite's live console runs a worker on the
    # test run's queue, which would otherwise take this stack's operations and run them on the test database.
    env.update(
        DATABASE_URL=_database_url(database),
        SAMPLER_INTERVAL_SECONDS="2",
        SWITCHYARD_NAMESPACE=f"sycli-{uuid.uuid4().hex[:8]}",
    )
    log = tmp_path / "run.log"
    launcher = subprocess.Popen(
        [sys.executable, "-m", "tools.run", "--port", str(port)],
        cwd=clone,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as a terminal's foreground job: Ctrl-C reaches all of it
    )
    seen: set[int] = set()
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _healthy(base), 120, launcher, log)
        seen.update(p.pid for p in psutil.Process(launcher.pid).children(recursive=True))
        env_file = clone / ".run" / "env"
        assert env_file.stat().st_mode & 0o077 == 0  # URLs may carry passwords: this user's only
        written = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if not line.startswith("#"))
        assert written["DATABASE_URL"].endswith(f"/{database}") and written["DEBUG"] == "1"
        assert "HOME" not in written and "PATH" not in written

        token_run = _manage(clone, "create_api_token", "admin")
        assert token_run.returncode == 0, token_run.stderr
        token = token_run.stdout.strip().splitlines()[-1]
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {token}"
        assert api.get(f"{base}/api/v1/me", timeout=10).json()["username"] == "admin"

        # The demo's payment saga fails its compensation within a few orders; resolve one from the shell.
        saga_id = _wait(lambda: _first(api, f"{base}/api/v1/sagas?status=compensation_failed", "sagas", "id"), 150)
        resolved = _manage(
            clone, "saga", "resolve", saga_id, "--user", "admin", "--reason", "refunded by hand", "--note", "t-42"
        )
        assert resolved.returncode == 0, resolved.stderr
        assert re.match(r"operation \S+ ", resolved.stdout)
        _wait(
            lambda: api.get(f"{base}/api/v1/sagas/{saga_id}", timeout=10).json()["status"] == "resolved_manually", 150
        )

        fingerprint = _wait(lambda: _first(api, f"{base}/api/v1/dead-letter-groups", "groups", "fingerprint"), 150)
        replay = _manage(
            clone, "dlq", "replay", "--user", "admin", "--group", fingerprint, "--rate", "50",
            "--key", "fix-42", "--reason", "bug fixed", "--dry-run",
        )  # fmt: skip
        assert replay.returncode == 0, replay.stderr
        assert re.match(r"operation \S+ started: \d+ dead letters", replay.stdout), replay.stdout
        # RabbitMQ without its management API (make run does not set one): the queues the console knows are listed.
        if written.get("RABBITMQ_URL") and not written.get("RABBITMQ_MANAGEMENT_URL"):

            def rabbit_queues():
                listed = api.get(f"{base}/api/v1/consumers?broker=rabbitmq", timeout=10).json()["consumers"]
                names = {c["name"] for c in listed}
                return names if {"demo-shipping", "demo-shipping_error"} <= names else None

            _wait(rabbit_queues, 90)
        # The demo's traffic shows on the dashboard's charts within the hour's buckets.
        timeline = api.get(f"{base}/api/v1/dashboard/timeline", timeout=30).json()
        drawn = {c["name"]: sum(v or 0 for s in c["series"] for v in s["values"]) for c in timeline["charts"]}
        assert drawn["dead-letters"] > 0 and drawn["saga-failures"] > 0, drawn
        _node_service_takes_part(clone, base, token, written, api, log)
        _dashboard_draws_in_a_browser(page, base, log)
        seen.update(p.pid for p in psutil.Process(launcher.pid).children(recursive=True))
    finally:
        os.killpg(launcher.pid, signal.SIGINT)  # Ctrl-C in the terminal that ran `make run`
        try:
            launcher.wait(90)
        finally:
            _drop(database)
    assert launcher.returncode in (0, 130), log.read_text()[-3000:]
    assert not (clone / ".run" / "env").exists()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _left(seen, clone):
        time.sleep(0.2)
    assert _left(seen, clone) == []
    # After it: the file is gone, so the command says again what is missing instead of aiming at closed ports.
    after = _manage(clone, "create_api_token", "admin")
    assert after.returncode == 2 and "Traceback" not in after.stderr


def _node_service_takes_part(clone: Path, base: str, token: str, written: dict, api, log: Path) -> None:
    """docs/integration.md's example service beside the demo: its saga appears, and the console's compensate
    reaches it over the demo's NATS (embedded or the machine's, from .run/env) and makes the saga compensated."""
    if not written.get("NATS_URL"):
        return
    subject, stream = f"payments.{uuid.uuid4().hex[:8]}", f"PAYMENTS_{uuid.uuid4().hex[:8].upper()}"
    route = _manage(
        clone, "shell", "-c",
        "from sagas.models import CompensationRoute; "
        f"CompensationRoute.objects.create(saga_type='node.payment', broker='nats', destination='{subject}')",
    )  # fmt: skip
    assert route.returncode == 0, route.stderr
    out = log.with_name("node.log")
    env = {**PLAIN_SHELL, "SWITCHYARD_URL": base, "SWITCHYARD_TOKEN": token, "NATS_URL": written["NATS_URL"],
           "PAYMENTS_SUBJECT": subject, "PAYMENTS_STREAM": stream}  # fmt: skip
    node = subprocess.Popen(
        ["node", "examples/node-payments/payments.js"],
        cwd=clone,
        env=env,
        stdout=out.open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        said = lambda what: next((e for e in _json_lines(out) if e["what"] == what), None)  # noqa: E731
        saga_id = _wait(lambda: said("saga failed"), 30, log=out)["saga_id"]
        assert api.get(f"{base}/api/v1/sagas/{saga_id}", timeout=10).json()["status"] == "failed"
        answer = api.post(
            f"{base}/api/v1/sagas/{saga_id}/actions/compensate",
            json={"reason": "release the authorization", "idempotency_key": f"node-{saga_id}"},
            timeout=10,
        )
        assert answer.status_code in (200, 201, 202), answer.text
        _wait(
            lambda: api.get(f"{base}/api/v1/sagas/{saga_id}", timeout=10).json()["status"] == "compensated", 60, log=out
        )
    finally:
        node.terminate()
        node.wait(10)
        from brokers.nats import NatsAdapter

        with NatsAdapter(written["NATS_URL"]) as nats:
            nats.delete_destination(stream)


def _dashboard_draws_in_a_browser(page, base: str, log: Path) -> None:
    """Log in with the password `make run` printed; the dashboard's charts draw the demo's last hour."""
    password = re.search(r"with password: (\S+)", log.read_text()).group(1)
    page.goto(f"{base}/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    for name in ("dead-letters", "saga-failures", "outbox", "consumers"):
        page.locator(f"#plot-{name} .uplot canvas").wait_for(timeout=15_000)


def _json_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def _wait(probe, timeout: float, launcher=None, log=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if launcher is not None:
            assert launcher.poll() is None, log.read_text()[-4000:]
        try:
            value = probe()
        except requests.RequestException:
            value = None
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"not within {timeout} s" + (f"\n{log.read_text()[-4000:]}" if log else ""))


def _healthy(base: str) -> bool:
    return requests.get(f"{base}/healthz", timeout=5).status_code == 200


def _first(api: requests.Session, url: str, key: str, field: str):
    rows = api.get(url, timeout=10).json()[key]
    return rows[0][field] if rows else None


def _left(pids: set[int], clone: Path) -> list[list[str]]:
    left = []
    for process in psutil.process_iter():
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            if process.pid in pids or str(clone) in " ".join(process.cmdline()) or str(clone) == process.cwd():
                left.append(process.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return left


def _drop(database: str) -> None:
    admin = urllib.parse.urlunsplit(urllib.parse.urlsplit(os.environ["DATABASE_URL"])._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
