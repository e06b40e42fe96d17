"""Run Switchyard's own commands as real subprocesses on the test database, to kill them or stop them with SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent.parent


def env() -> dict[str, str]:
    """The test process's environment (namespace, brokers) pointed at the test database, as live_console does."""
    db = settings.DATABASES["default"]
    out = dict(os.environ)
    auth = f"{db['USER']}:{db['PASSWORD']}" if db.get("PASSWORD") else db["USER"]
    out["DATABASE_URL"] = f"postgresql://{auth}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    out["PYTHONUNBUFFERED"] = "1"
    # A killed dlq_ingest's sources wait one lease period for the next process; tests kill many times.
    out.setdefault("DLQ_INGEST_LEASE_SECONDS", "3")
    return out


def manage(*args: str, log: Path, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    """`python manage.py <args>` in its own session, so a kill reaches every process it started."""
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**env(), **(extra_env or {})},
        stdout=log.open("a"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(10)
