"""The supervised processes as the web process sees them: `make run`'s supervisor (tools/supervise.py) writes their
state to the JSON file named by SWITCHYARD_PROCESS_STATE; /healthz and the Processes page read it.

A console run some other way (docker compose, systemd, the tests' live console) has no such file: then nothing is
said about processes, rather than something made up."""

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings

STATE_ENV = "SWITCHYARD_PROCESS_STATE"  # tools.supervise.STATE_ENV; tools/ is not imported by the console
# The supervisor rewrites its file every 2 s; one not rewritten for this long means the supervisor itself is gone.
STALE_AFTER_SECONDS = 15
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@/\s]+)@", re.I)


def read() -> dict | None:
    """{supervisor: {...}, processes: {name: {...}}} or None when no supervisor runs this console. A file that
    cannot be read or parsed is reported as such, never raised: /healthz must answer whatever the file holds."""
    path = os.environ.get(STATE_ENV)
    if not path:
        return None
    try:
        state = json.loads(Path(path).read_text())
        updated = datetime.fromisoformat(state["updated_at"])
        processes = state["processes"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return {"supervisor": {"ok": False, "error": f"process state unreadable: {type(e).__name__}"}, "processes": {}}
    age = (datetime.now(UTC) - updated).total_seconds()
    supervisor = {
        "ok": age <= STALE_AFTER_SECONDS,
        "pid": state.get("supervisor_pid"),
        "started_at": state.get("started_at"),
        "updated_at": state["updated_at"],
        "backoff": state.get("backoff") or {},
    }
    if not supervisor["ok"]:
        supervisor["error"] = f"the supervisor has not written its state for {int(age)} s"
    return {"supervisor": supervisor, "processes": processes}


def for_healthz(state: dict) -> dict:
    """What /healthz shows of each process: public (no login), so no output lines — they may name hosts and paths."""
    keys = ("state", "since", "restarts", "last_exit_code", "last_exit_signal", "last_exit_at", "restart_in_seconds")
    processes = {name: {k: p.get(k) for k in keys if k in p} for name, p in state["processes"].items()}
    return {"supervisor": state["supervisor"], "processes": processes}


def redact(line: str) -> str:
    """An output line as the Processes page shows it: a password in a URL, and the value of each secret setting,
    replaced. Output is the processes' own (tracebacks, client errors), and secrets must never reach a page."""
    line = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", line)
    for secret in _secrets():
        line = line.replace(secret, "***")
    from console.brokers import scrub

    return scrub(line)  # and every secret of the broker connections


def _secrets() -> list[str]:
    values = [settings.SECRET_KEY, getattr(settings, "AWS_SECRET_ACCESS_KEY", None)]
    for url in (settings.DATABASE_URL, settings.REDIS_URL, getattr(settings, "RABBITMQ_URL", None)):
        match = _URL_PASSWORD.search(url or "")
        if match:
            values.append(match["password"])
    return [v for v in values if v and len(v) >= 4]
