"""`make run`'s process supervisor: runs each Procfile process, restarts one that exits, and never stops the others.

Why not honcho, supervisor or circus (ADR 0004): honcho stops every process when one exits; supervisor restarts a
process that had run past `startsecs` at once and one that had not with a linear, uncapped delay until it gives up
(FATAL), and reports through XML-RPC; circus retries at a fixed interval, up to max_retry, and brings ZeroMQ and
tornado. What is wanted is small: a capped exponential backoff, a state the web process can read, and a stop that
leaves nothing behind.

1. Each process runs as `sh -c "exec <command>"` in a session (and so a process group) of its own, its output (stdout
   and stderr together) read line by line, printed with its name and kept as its last TAIL lines.
2. A process that exits is restarted after `backoff_base * 2 ** (failures - 1)` seconds, capped at `backoff_max`;
   `failures` counts exits in a row that came less than `stable_after` seconds after a start, so a process that ran
   well for a while and then died comes back at once-ish (backoff_base), and a crash loop slows down.
3. What remains of an exited process's group (a Celery pool child, say) gets SIGTERM when the exit is seen and
   SIGKILL before the restart, so a restart never runs next to its predecessor's orphans.
4. The state — per process: running / restarting, pid, restarts, last exit code, last output lines, since when —
   is written (atomically) to the JSON file named by `state_path` on every change and every HEARTBEAT seconds; the
   web process reads it (console/processes.py) for /healthz and the Processes page.
5. `stop()` sends SIGTERM to every process group, waits up to `grace` seconds, then SIGKILLs what is left.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

TAIL = 20  # output lines kept per process (the last error is among them)
LINE_MAX = 1000  # characters kept of one output line
HEARTBEAT = 2.0  # seconds between state writes when nothing changes: a stale file means the supervisor is gone
STATE_ENV = "SWITCHYARD_PROCESS_STATE"
_PROCFILE_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")


def parse_procfile(text: str) -> dict[str, str]:
    """`name: command` lines (Procfile format, as honcho and foreman read it); blank lines and comments skipped."""
    procs: dict[str, str] = {}
    for line in text.splitlines():
        match = _PROCFILE_LINE.match(line.strip())
        if match and not line.lstrip().startswith("#"):
            procs[match.group(1)] = match.group(2).strip()
    return procs


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Proc:
    name: str
    command: str
    popen: subprocess.Popen | None = None
    state: str = "starting"
    since: str = field(default_factory=_now)
    started_at: float = 0.0  # monotonic
    restarts: int = 0
    failures: int = 0  # exits in a row that came soon after a start
    exit_code: int | None = None
    exit_at: str | None = None
    restart_at: float | None = None  # monotonic
    backoff: float = 0.0
    tail: collections.deque = field(default_factory=lambda: collections.deque(maxlen=TAIL))
    last_output: list[str] = field(default_factory=list)  # the tail when it last exited
    reader: threading.Thread | None = None

    def as_json(self) -> dict:
        pid = self.popen.pid if self.popen is not None and self.popen.poll() is None else None
        data = {
            "state": self.state,
            "since": self.since,
            "pid": pid,
            "restarts": self.restarts,
            "last_exit_code": self.exit_code,
            "last_exit_signal": _signal_name(self.exit_code),
            "last_exit_at": self.exit_at,
            "last_output": self.last_output,
        }
        if self.state == "restarting" and self.restart_at is not None:
            data["backoff_seconds"] = self.backoff
            data["restart_in_seconds"] = round(max(0.0, self.restart_at - time.monotonic()), 1)
        return data


def _signal_name(code: int | None) -> str | None:
    if code is None or code >= 0:
        return None
    try:
        return signal.Signals(-code).name
    except ValueError:
        return None


class Supervisor:
    def __init__(
        self,
        procs: dict[str, str],
        *,
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
        state_path: str | Path | None = None,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        stable_after: float = 30.0,
        grace: float = 15.0,
        out=None,
    ):
        self.procs = {name: Proc(name, command) for name, command in procs.items()}
        self.env = dict(os.environ if env is None else env)
        self.cwd = str(cwd) if cwd else None
        self.state_path = Path(state_path) if state_path else None
        if self.state_path:
            self.env[STATE_ENV] = str(self.state_path)
        self.env.setdefault("PYTHONUNBUFFERED", "1")  # a child's lines reach the terminal (and the state) as printed
        self.backoff_base, self.backoff_max, self.stable_after, self.grace = (
            backoff_base,
            backoff_max,
            stable_after,
            grace,
        )
        self.out = out or sys.stdout
        self.width = max((len(n) for n in procs), default=4)
        self._print_lock = threading.Lock()
        self._stopping = threading.Event()
        self._written = 0.0
        self.started_at = _now()

    # --- running ---

    def run(self) -> None:
        """Start every process and look after them until request_stop() (a signal handler may call it), then stop."""
        for proc in self.procs.values():
            self._start(proc)
        self._write_state()
        try:
            while not self._stopping.wait(0.1):
                self.step()
        finally:
            self.stop()

    def request_stop(self) -> None:
        self._stopping.set()

    def step(self) -> None:
        """One pass: notice exits, restart what is due, write the state when it changed or the heartbeat is due."""
        changed = False
        now = time.monotonic()
        for proc in self.procs.values():
            if proc.state in ("starting", "running") and proc.popen is not None and proc.popen.poll() is not None:
                self._exited(proc, now)
                changed = True
            elif proc.state == "restarting" and proc.restart_at is not None and now >= proc.restart_at:
                _kill_group(proc.popen, signal.SIGKILL)  # orphans of the last run, if any survived SIGTERM
                proc.restarts += 1
                self._start(proc)
                changed = True
            elif proc.state == "starting" and now - proc.started_at >= 1.0:
                proc.state = "running"  # past its first second: counted as up (the `since` stays the start)
                changed = True
        if changed or time.monotonic() - self._written >= HEARTBEAT:
            self._write_state()

    def _start(self, proc: Proc) -> None:
        proc.popen = subprocess.Popen(
            ["/bin/sh", "-c", f"exec {proc.command}"],
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped (and cleaned up) as one
        )
        proc.state, proc.since, proc.started_at, proc.restart_at = "starting", _now(), time.monotonic(), None
        proc.tail.clear()
        proc.reader = threading.Thread(target=self._read, args=(proc, proc.popen), daemon=True)
        proc.reader.start()
        self._say(proc.name, f"started with pid {proc.popen.pid}")

    def _exited(self, proc: Proc, now: float) -> None:
        code = proc.popen.returncode
        _kill_group(proc.popen, signal.SIGTERM)  # the rest of its group, if the leader left any behind
        if proc.reader is not None:
            proc.reader.join(1.0)  # its last lines, up to the exit
        ran = now - proc.started_at
        proc.failures = proc.failures + 1 if ran < self.stable_after else 1
        proc.backoff = min(self.backoff_base * 2 ** (proc.failures - 1), self.backoff_max)
        proc.exit_code, proc.exit_at = code, _now()
        proc.last_output = list(proc.tail)
        proc.state, proc.since, proc.restart_at = "restarting", _now(), now + proc.backoff
        how = f"signal {_signal_name(code)}" if _signal_name(code) else f"code {code}"
        self._say(proc.name, f"exited with {how} after {ran:.1f} s; restarting in {proc.backoff:g} s")

    def _read(self, proc: Proc, popen: subprocess.Popen) -> None:
        for raw in iter(popen.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            proc.tail.append(line[:LINE_MAX])
            self._print(proc.name, line)
        popen.stdout.close()

    # --- stopping ---

    def stop(self) -> None:
        """SIGTERM every process group, wait up to `grace` seconds for them, SIGKILL the rest; write the final state."""
        self._stopping.set()
        running = [p for p in self.procs.values() if p.popen is not None]
        for proc in running:
            _kill_group(proc.popen, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for proc in running:
            while time.monotonic() < deadline and _group_alive(proc.popen):
                time.sleep(0.05)
        for proc in running:
            _kill_group(proc.popen, signal.SIGKILL)
            try:
                proc.popen.wait(5)
            except subprocess.TimeoutExpired:
                pass
            if proc.reader is not None:
                proc.reader.join(1.0)
            proc.state, proc.since = "stopped", _now()
        self._write_state()
        self._print("supervise", f"stopped {len(running)} process{'es' if len(running) != 1 else ''}")

    # --- state and output ---

    def state(self) -> dict:
        return {
            "supervisor_pid": os.getpid(),
            "started_at": self.started_at,
            "updated_at": _now(),
            "heartbeat_seconds": HEARTBEAT,
            "backoff": {"base": self.backoff_base, "max": self.backoff_max, "stable_after": self.stable_after},
            "processes": {name: proc.as_json() for name, proc in self.procs.items()},
        }

    def _write_state(self) -> None:
        self._written = time.monotonic()
        if self.state_path is None:
            return
        tmp = self.state_path.with_name(f".{self.state_path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.state(), indent=1))
        os.replace(tmp, self.state_path)  # readers never see half a file

    def _say(self, name: str, message: str) -> None:
        self._print("supervise", f"{name}: {message}")

    def _print(self, name: str, line: str) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        with self._print_lock:
            try:
                self.out.write(f"{stamp} {name:<{self.width}} | {line}\n")
                self.out.flush()
            except (OSError, ValueError):
                pass  # a closed terminal must not stop the supervision


def _kill_group(popen: subprocess.Popen | None, sig: int) -> None:
    if popen is None:
        return
    try:
        os.killpg(popen.pid, sig)  # the group keeps the leader's pid as its id, even after the leader has gone
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(popen: subprocess.Popen) -> bool:
    popen.poll()  # reap the leader if it exited
    try:
        os.killpg(popen.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--procfile", "-f", default="Procfile")
    parser.add_argument("--state", help=f"JSON file the state is written to (children get its path in ${STATE_ENV})")
    parser.add_argument("--backoff-base", type=float, default=1.0)
    parser.add_argument("--backoff-max", type=float, default=60.0)
    parser.add_argument("--stable-after", type=float, default=30.0)
    parser.add_argument("--grace", type=float, default=15.0)
    args = parser.parse_args(argv)
    supervisor = Supervisor(
        parse_procfile(Path(args.procfile).read_text()),
        state_path=args.state,
        backoff_base=args.backoff_base,
        backoff_max=args.backoff_max,
        stable_after=args.stable_after,
        grace=args.grace,
    )
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: supervisor.request_stop())
    supervisor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
