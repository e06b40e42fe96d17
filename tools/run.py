"""`make run`: start what the machine lacks, migrate, create the admin login, then run the console until Ctrl-C.

1. tools.services starts each missing service (or every one that has an embedded form, with --embedded).
2. The database named in DATABASE_URL is created if missing, then migrated.
3. `ensure_admin` creates the `admin` login and prints its password once.
4. tools.supervise runs the Procfile (daphne, Celery worker and beat, the demo traffic, ...) with those variables,
   and restarts a process that exits, with a capped exponential backoff, while the others keep running (ADR 0004).
   Its state (.run/processes.json) is what /healthz and the Processes page show.
5. On Ctrl-C or SIGTERM the supervisor stops its processes, then the services started in step 1 are stopped.

While it runs, `.run/env` (in --run-dir) holds the variables it gave its processes, so `python manage.py ...` in a
plain shell reaches the same database and brokers (manage.py loads the file); it is removed on the way out.
"""

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from tools.services import ensure_services
from tools.supervise import Supervisor, parse_procfile

ROOT = Path(__file__).resolve().parent.parent
# Variables of the shell that started `make run` which the console reads; copied to .run/env beside what make run set.
# Not the whole environment: HOME, SSH_AUTH_SOCK and the like are nobody's business in a file.
SETTINGS_PREFIXES = (
    "SWITCHYARD_", "DJANGO_", "DATABASE_", "REDIS_", "KAFKA_", "TANSU_", "SQS_", "AWS_", "RABBITMQ_", "NATS_",
    "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "CSRF_", "OPERATION_", "LOG_LEVEL", "SAMPLER_", "MONITORING_", "ALERT_",
    "EMAIL_", "DLQ_", "OUTBOX_", "SAGA_",
)  # fmt: skip


def write_env_file(path: Path, child_env: dict[str, str]) -> None:
    """The settings the children got, as KEY=VALUE lines, readable by this user only (URLs may hold passwords)."""
    lines = [f"{k}={v}\n" for k, v in sorted(child_env.items()) if k.startswith(SETTINGS_PREFIXES) and "\n" not in v]
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# written by `make run` (tools/run.py) while it runs; manage.py loads it\n" + "".join(lines))
    os.replace(tmp, path)  # whole or absent: a manage.py started meanwhile never reads half a file


def ensure_database(url: str) -> None:
    """CREATE DATABASE for DATABASE_URL's name when it does not exist (connecting to the `postgres` database)."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(url)
    name = params.get("dbname") or "postgres"
    admin = make_conninfo(url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"created database {name}", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embedded", action="store_true", help="start embedded services even where system ones run")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--procfile", default=str(ROOT / "Procfile"))
    parser.add_argument("--run-dir", default=str(ROOT / ".run"), help="data and logs of the embedded services")
    args = parser.parse_args(argv)

    run_dir = Path(args.run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    env, services = ensure_services(embedded=args.embedded, workdir=run_dir)
    supervisor = None
    env_file = run_dir / "env"

    def stop(signum, frame):
        if supervisor is not None:
            supervisor.request_stop()
        else:
            raise KeyboardInterrupt  # still preparing (migrate, ensure_admin): stop the services and leave

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        child_env = {**os.environ, **env}
        child_env.setdefault("DEBUG", "1")
        # The demo's RabbitMQ dead-letter queue (AMQP cannot list queues, so discovery is told its name).
        child_env.setdefault("DLQ_RABBITMQ_QUEUES", "demo-shipping_error")
        child_env.update(SWITCHYARD_PORT=str(args.port), SWITCHYARD_HOST=args.host, SWITCHYARD_RUN_DIR=str(run_dir))
        child_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{child_env.get('PATH', '')}"
        child_env["SWITCHYARD_PROCESS_STATE"] = str(run_dir / "processes.json")
        child_env["SWITCHYARD_RUN_PID"] = str(os.getpid())  # manage.py ignores the file of a launcher that died
        write_env_file(env_file, child_env)
        ensure_database(child_env["DATABASE_URL"])
        manage = [sys.executable, str(ROOT / "manage.py")]
        subprocess.run([*manage, "migrate", "--no-input"], env=child_env, check=True, cwd=ROOT)
        subprocess.run([*manage, "ensure_admin"], env=child_env, check=True, cwd=ROOT)
        print(f"\nSwitchyard: http://{args.host}:{args.port}/  (Ctrl-C stops everything)\n", flush=True)
        supervisor = Supervisor(
            parse_procfile(Path(args.procfile).read_text()),
            env=child_env,
            cwd=ROOT,
            state_path=run_dir / "processes.json",
        )
        supervisor.run()  # until Ctrl-C or SIGTERM; stops every process it started before it returns
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        env_file.unlink(missing_ok=True)  # its ports are about to close: a later manage.py must not aim at them
        for service in reversed(services):
            service.stop()


if __name__ == "__main__":
    sys.exit(main())
