"""`make run EMBEDDED=1`'s launcher: login page and /healthz green within 90 s; a SIGKILLed process comes back while
the rest keeps serving; then a clean stop."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import requests

from tools.services import free_port

ROOT = Path(__file__).resolve().parents[2]
# Set by `make test`'s service runner and tests/env.py; the launcher must start its own embedded services instead.
STRIP = ("DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS", "SQS_ENDPOINT_URL", "TANSU_BOOTSTRAP_SERVERS")


def test_it_runs_the_whole_console_embedded_and_stops_clean(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in STRIP and not k.startswith(("SWITCHYARD_", "DJANGO_"))}
    log = tmp_path / "run.log"
    launcher = subprocess.Popen(
        [sys.executable, "-m", "tools.run", "--embedded", "--port", str(port), "--run-dir", str(tmp_path / "run")],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    seen: set[int] = set()
    try:
        deadline = time.monotonic() + 90
        health = None
        while time.monotonic() < deadline:
            assert launcher.poll() is None, log.read_text()[-4000:]
            seen.update(p.pid for p in psutil.Process(launcher.pid).children(recursive=True))
            try:
                health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
                if health.status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(1)
        assert health is not None and health.status_code == 200, log.read_text()[-4000:]
        checks = health.json()["checks"]
        for name in ("database", "redis", "kafka:default", "sqs:default"):
            assert checks[name]["ok"] is True, checks
        login = requests.get(f"http://127.0.0.1:{port}/login/", timeout=5)
        assert login.status_code == 200 and 'name="password"' in login.text
        assert "with password:" in log.read_text()  # the admin password, printed once
        seen.update(p.pid for p in psutil.Process(launcher.pid).children(recursive=True))
        _kill_dlq_ingest_and_see_it_come_back(port, tmp_path / "run" / "processes.json", log)
        seen.update(p.pid for p in psutil.Process(launcher.pid).children(recursive=True))
    finally:
        launcher.send_signal(signal.SIGTERM)
        launcher.wait(60)
    assert len(seen) >= 7  # postgres, redis, noida, moto, daphne, celery worker and beat, dlq ...
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(psutil.pid_exists(p) and _alive(p) for p in seen):
        time.sleep(0.2)
    left = [p for p in seen if psutil.pid_exists(p) and _alive(p)]
    assert left == [], [psutil.Process(p).cmdline() for p in left]
    # pgserver's postgres daemonizes (it is nobody's child): find it, and anything else, by the run directory.
    strays = [p.cmdline() for p in psutil.process_iter() if _alive(p.pid) and str(tmp_path) in " ".join(_cmdline(p))]
    assert strays == []


def _kill_dlq_ingest_and_see_it_come_back(port: int, state_path, log) -> None:
    """SIGKILL the dead-letter ingest (it once stopped the whole console within a second): pages keep answering,
    /healthz reports it restarting (still 200), and it comes back with a new pid."""
    state = json.loads(state_path.read_text())["processes"]
    assert set(state) >= {"web", "worker", "beat", "dlq", "sagas", "outbox", "demo"}
    dlq, web = state["dlq"]["pid"], state["web"]["pid"]
    assert dlq and web
    os.kill(dlq, signal.SIGKILL)
    deadline = time.monotonic() + 60
    seen_states = set()
    while time.monotonic() < deadline:
        health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert health.status_code == 200, health.text
        current = health.json()["processes"]["dlq"]
        seen_states.add(current["state"])
        assert requests.get(f"http://127.0.0.1:{port}/login/", timeout=10).status_code == 200
        if current["restarts"] == 1 and current["state"] == "running":
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"dlq never came back: {seen_states}\n{log.read_text()[-4000:]}")
    assert current["last_exit_signal"] == "SIGKILL" and current["last_exit_code"] == -9
    after = json.loads(state_path.read_text())["processes"]
    assert after["dlq"]["pid"] not in (None, dlq)
    assert after["web"]["pid"] == web and after["web"]["restarts"] == 0  # nothing else was restarted
    assert all(p["restarts"] == 0 for name, p in after.items() if name != "dlq"), after


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
