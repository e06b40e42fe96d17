"""tools/supervise.py with a small Procfile of real commands: a process that exits is restarted with a growing, capped
delay while the others keep running; its state is written for the web process; stopping leaves nothing behind."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]

PROCFILE = """
# a comment, and a blank line, are skipped

steady: python -c "import time; print('steady up', flush=True); time.sleep(600)"
crash: sh -c 'echo starting; echo "boom: the database is down" >&2; exit 3'
family: sh -c 'sleep 600 & sleep 600 & wait'
"""


def _supervise(tmp_path: Path, procfile: str, *args: str) -> tuple[subprocess.Popen, Path, Path]:
    (tmp_path / "Procfile").write_text(procfile)
    state, log = tmp_path / "processes.json", tmp_path / "supervise.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.supervise", "-f", str(tmp_path / "Procfile"), "--state", str(state), *args],
        cwd=ROOT,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return proc, state, log


def _state(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _wait_for(predicate, timeout: float, what: str, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} within {timeout} s:\n{log.read_text()[-3000:]}")


def _descendants(pid: int) -> set[int]:
    try:
        return {p.pid for p in psutil.Process(pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _stop(proc: subprocess.Popen, seen: set[int], log: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, log.read_text()[-3000:]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(p) for p in seen):
        time.sleep(0.1)
    assert [p for p in seen if _alive(p)] == [], log.read_text()[-3000:]


def test_it_restarts_a_crashing_process_with_a_growing_capped_delay_and_the_others_keep_running(tmp_path):
    proc, state_path, log = _supervise(
        tmp_path, PROCFILE, "--backoff-base", "0.2", "--backoff-max", "0.8", "--stable-after", "30"
    )
    seen: set[int] = set()
    try:
        first = _wait_for(lambda: _state(state_path).get("processes"), 15, "a first state", log)
        steady_pid = _wait_for(lambda: _state(state_path)["processes"]["steady"]["pid"], 15, "steady's pid", log)
        _wait_for(lambda: len(_descendants(proc.pid)) >= 5, 15, "the family's sleepers", log)
        seen |= _descendants(proc.pid)
        assert set(first) == {"steady", "crash", "family"}
        started = time.monotonic()
        restarted = _wait_for(
            lambda: (s := _state(state_path)["processes"]["crash"])["restarts"] >= 5 and s, 30, "five restarts", log
        )
        elapsed = time.monotonic() - started
        seen |= _descendants(proc.pid)
        # The delays double from the base and stop at the cap: 0.2, 0.4, 0.8, 0.8, 0.8 ...
        delays = [
            float(d)
            for d in re.findall(r"crash: exited with code 3 after [\d.]+ s; restarting in ([\d.]+) s", log.read_text())
        ]
        assert delays[:5] == [0.2, 0.4, 0.8, 0.8, 0.8], delays
        assert elapsed >= sum(delays[1:5]) * 0.9  # really waited (the first delay may have passed before `started`)
        assert restarted["last_exit_code"] == 3 and restarted["last_exit_at"]
        assert "boom: the database is down" in restarted["last_output"] and "starting" in restarted["last_output"]
        # Seen as restarting, with its backoff, between two runs.
        restarting = _wait_for(
            lambda: (s := _state(state_path)["processes"]["crash"])["state"] == "restarting" and s,
            10,
            "restarting",
            log,
        )
        assert restarting["backoff_seconds"] == 0.8 and restarting["since"]
        # The others never stopped.
        steady = _state(state_path)["processes"]["steady"]
        assert steady["state"] == "running" and steady["restarts"] == 0 and steady["pid"] == steady_pid
        assert _state(state_path)["processes"]["family"]["restarts"] == 0
        assert "steady up" in log.read_text()
        seen |= _descendants(proc.pid)
    finally:
        _stop(proc, seen, log)
    final = _state(state_path)["processes"]
    assert {p["state"] for p in final.values()} == {"stopped"}


def test_it_restarts_a_process_that_ran_a_while_after_the_base_delay_again(tmp_path):
    procfile = "tired: sh -c 'sleep 0.6; echo tired; exit 1'\n"
    proc, state_path, log = _supervise(tmp_path, procfile, "--backoff-base", "0.2", "--stable-after", "0.5")
    try:
        _wait_for(
            lambda: _state(state_path).get("processes", {}).get("tired", {}).get("restarts", 0) >= 3, 20, "3", log
        )
    finally:
        _stop(proc, _descendants(proc.pid), log)
    delays = re.findall(r"tired: exited with code 1 after [\d.]+ s; restarting in ([\d.]+) s", log.read_text())
    assert delays[:3] == ["0.2", "0.2", "0.2"]  # each run lasted past stable_after: no doubling


def test_it_restarts_a_process_killed_with_sigkill_and_reports_the_signal(tmp_path):
    procfile = "victim: python -c \"import time; print('ready', flush=True); time.sleep(600)\"\nother: sleep 600\n"
    proc, state_path, log = _supervise(tmp_path, procfile, "--backoff-base", "0.2")
    seen: set[int] = set()
    try:
        pid = _wait_for(lambda: _state(state_path).get("processes", {}).get("victim", {}).get("pid"), 15, "pid", log)
        other = _wait_for(lambda: _state(state_path)["processes"]["other"]["pid"], 15, "other's pid", log)
        _wait_for(lambda: "ready" in log.read_text(), 15, "victim ready", log)
        seen |= _descendants(proc.pid)
        os.kill(pid, signal.SIGKILL)
        back = _wait_for(
            lambda: (s := _state(state_path)["processes"]["victim"])["restarts"] == 1 and s["pid"] and s,
            15,
            "back",
            log,
        )
        assert back["pid"] != pid and back["last_exit_code"] == -9 and back["last_exit_signal"] == "SIGKILL"
        assert back["last_output"] == ["ready"]
        assert _state(state_path)["processes"]["other"]["pid"] == other and _alive(other)
        seen |= _descendants(proc.pid)
    finally:
        _stop(proc, seen, log)


def test_it_leaves_no_process_behind_when_a_child_ignores_sigterm(tmp_path):
    ignore = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('x', flush=True); time.sleep(600)"
    )
    procfile = f'stubborn: python -c "{ignore}"\n'
    proc, state_path, log = _supervise(tmp_path, procfile, "--grace", "1")
    try:
        _wait_for(lambda: "x" in log.read_text().split(), 15, "the child's output", log)
        seen = _descendants(proc.pid)
        assert seen
    finally:
        started = time.monotonic()
        _stop(proc, _descendants(proc.pid), log)
    assert time.monotonic() - started < 10  # SIGKILL after the grace period
