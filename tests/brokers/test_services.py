"""tools.services: embedded services start, answer, and leave nothing behind when stopped."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from brokers.kafka import KafkaAdapter
from brokers.nats import NatsAdapter
from brokers.sqs import SqsAdapter
from tools import services

ROOT = Path(__file__).resolve().parents[2]


def _tree(pid: int) -> list[psutil.Process]:
    parent = psutil.Process(pid)
    return [parent, *parent.children(recursive=True)]


def _gone(processes: list[psutil.Process], timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if not alive:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize(
    "start", [services.start_noida, services.start_moto, services.start_tansu, services.start_nats]
)
def test_it_stops_a_service_without_leaving_a_process_behind(start, tmp_path):
    service = start(log_dir=tmp_path)
    processes = _tree(service.pid)
    port = int(service.url.rsplit(":", 1)[1])
    assert services.is_reachable(service.url)

    service.stop()
    service.stop()  # twice is harmless

    assert _gone(processes), [p.cmdline() for p in processes if p.is_running()]
    # Nothing of ours listens on the port any more. (Under load another test run may already have been handed the
    # same free port, so ask who listens rather than whether anything does.)
    assert _listeners(port) & {p.pid for p in processes} == set()
    assert service.log_path.exists()


def _listeners(port: int) -> set[int]:
    return {c.pid for c in psutil.net_connections(kind="tcp") if c.laddr and c.laddr.port == port and c.pid}


def test_it_reports_a_service_that_fails_to_start(tmp_path):
    argv = [sys.executable, "-c", "print('no such option: --kafka-port'); raise SystemExit(3)"]
    started = time.monotonic()

    with pytest.raises(services.ServiceError, match=r"(?s)exited with code 3.*no such option"):
        services._spawn("broken", argv, services.free_port(), "x", tmp_path)

    assert time.monotonic() - started < 5  # noticed when the process exits, not at the 30 s timeout


def test_it_tells_reachable_addresses_from_unreachable_ones():
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(16)
        port = listening.getsockname()[1]

        assert services.is_reachable(f"127.0.0.1:{port}")
        assert services.is_reachable(f"127.0.0.1:{services.free_port()},127.0.0.1:{port}")
        assert services.is_reachable(f"http://127.0.0.1:{port}/")
    assert not services.is_reachable(f"redis://127.0.0.1:{services.free_port()}/0")
    assert not services.is_reachable("postgresql://postgres@%2Ftmp%2Fno-such-dir/db")
    assert services._addresses("postgresql://postgres@%2Ftmp%2FPg/db") == [("/tmp/Pg/.s.PGSQL.5432", None)]
    assert services._addresses("postgresql://postgres@/db?host=/run/pg") == [("/run/pg/.s.PGSQL.5432", None)]
    assert services._addresses("postgresql://u:p@db.local:6432/x") == [("db.local", 6432)]


def test_it_starts_every_embedded_service_and_stops_them(tmp_path, monkeypatch):
    for variable in ("DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS", "SQS_ENDPOINT_URL", "NATS_URL"):
        monkeypatch.delenv(variable, raising=False)

    env, started = services.ensure_services(embedded=True, workdir=tmp_path)
    try:
        # Every broker but RabbitMQ has an embedded form (the machine's RabbitMQ is still used where it answers).
        assert {s.name for s in started} == {"postgres", "redis", "noida", "moto", "nats"}
        nats = NatsAdapter(env["NATS_URL"])
        try:
            assert nats.health().reachable
            # JetStream is on: a stream is made, written and read.
            nats.ensure_destination("EMBEDDED")
            nats.publish("EMBEDDED", b"x")
            assert [m.body for m in nats.read("EMBEDDED", 1, timeout=5)] == [b"x"]
        finally:
            nats.close()
        import psycopg
        import redis
        from psycopg.conninfo import make_conninfo

        with psycopg.connect(make_conninfo(env["DATABASE_URL"], dbname="postgres"), connect_timeout=5) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert redis.Redis.from_url(env["REDIS_URL"]).ping()
        assert KafkaAdapter(env["KAFKA_BOOTSTRAP_SERVERS"]).health().reachable
        sqs = SqsAdapter(
            env["SQS_ENDPOINT_URL"], env["AWS_REGION"], env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
        )
        assert sqs.health().reachable
        processes = [p for s in started if s.pid for p in _tree(s.pid)]
        postmaster = psutil.Process(int((tmp_path / "postgres" / "postmaster.pid").read_text().split()[0]))
    finally:
        services.stop_all(started)

    assert _gone([*processes, postmaster])
    assert not services.is_reachable(env["DATABASE_URL"])


def test_it_runs_up_until_sigterm_and_then_stops_what_it_started(tmp_path):
    env_file = tmp_path / "services.env"
    environ = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "SQS_ENDPOINT_URL")}
    command = [sys.executable, "-m", "tools.services", "up", "--env-file", str(env_file), "--workdir", str(tmp_path)]
    up = subprocess.Popen(command, env=environ, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while not env_file.exists() and up.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        env = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
        children = psutil.Process(up.pid).children(recursive=True)
        assert services.is_reachable(env["KAFKA_BOOTSTRAP_SERVERS"])
        assert services.is_reachable(env["SQS_ENDPOINT_URL"])
        assert env["AWS_REGION"] == "us-east-1"
    finally:
        up.send_signal(signal.SIGTERM)
        output, _ = up.communicate(timeout=30)

    assert up.returncode == 0, output
    assert "KAFKA_BOOTSTRAP_SERVERS=" in output
    assert _gone(children)
