"""/healthz and the Processes page read the supervisor's state (tools/supervise.py, written by a real supervisor
here): a restarting process is reported — never the status code while this web process serves — and its last output
is shown to a logged-in user, escaped and with secrets redacted, never to anonymous /healthz."""

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]
CRASH = "echo '<script>alert(1)</script> via postgresql://app:hunter2pass@db/x' >&2; exit 2"


@pytest.fixture
def supervised(tmp_path, monkeypatch):
    """A real supervisor with one steady process and one that keeps crashing; its state file is what the web reads."""
    (tmp_path / "Procfile").write_text(f'steady: sleep 600\ncrash: sh -c "{CRASH}"\n')
    state = tmp_path / "processes.json"
    proc = subprocess.Popen(
        # A long first backoff: the crashing process stays `restarting` for the whole test.
        [sys.executable, "-m", "tools.supervise", "-f", str(tmp_path / "Procfile"), "--state", str(state)]
        + ["--backoff-base", "30"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    monkeypatch.setenv("SWITCHYARD_PROCESS_STATE", str(state))
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            current = json.loads(state.read_text())["processes"] if state.exists() else {}
            if current and (current["crash"]["state"], current["steady"]["state"]) == ("restarting", "running"):
                break
            time.sleep(0.05)
        yield state
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_it_reports_each_process_on_healthz_with_a_200_while_one_restarts(world, supervised):
    response = Client().get("/healthz")
    assert response.status_code == 200  # this web process serves: a restarting worker does not change that
    body = response.json()
    assert body["supervisor"]["ok"] is True
    assert body["processes"]["steady"]["state"] == "running" and body["processes"]["steady"]["restarts"] == 0
    crash = body["processes"]["crash"]
    assert crash["state"] == "restarting" and crash["last_exit_code"] == 2 and crash["since"]
    assert body["restarting"] == ["crash"]
    assert "last_output" not in crash and "hunter2pass" not in response.content.decode()  # public: no output


def test_it_shows_the_last_output_escaped_and_redacted_on_the_processes_page(world, supervised):
    html = world.client(world.viewer).get("/processes/").content.decode()
    assert 'data-testid="process-crash" data-state="restarting"' in html
    assert 'data-testid="process-steady" data-state="running"' in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    assert "postgresql://app:***@db/x" in html and "hunter2pass" not in html
    assert Client().get("/processes/").status_code == 302  # a login first


def test_it_says_when_the_supervisor_stopped_writing(world, tmp_path, monkeypatch):
    old = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    state = {"updated_at": old, "supervisor_pid": 1, "processes": {"web": {"state": "running", "restarts": 0}}}
    path = tmp_path / "processes.json"
    path.write_text(json.dumps(state))
    monkeypatch.setenv("SWITCHYARD_PROCESS_STATE", str(path))
    body = Client().get("/healthz").json()
    assert body["supervisor"]["ok"] is False and "has not written its state" in body["supervisor"]["error"]
    path.write_text("{not json")
    response = Client().get("/healthz")
    assert response.status_code == 200 and response.json()["supervisor"]["ok"] is False


def test_it_says_plainly_when_no_supervisor_runs_the_console(world, monkeypatch):
    monkeypatch.delenv("SWITCHYARD_PROCESS_STATE", raising=False)
    assert "processes" not in Client().get("/healthz").json()
    html = world.client(world.viewer).get("/processes/").content.decode()
    assert 'data-testid="no-supervisor"' in html
