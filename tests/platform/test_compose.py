"""docker-compose.yml and Dockerfile describe a runnable stack.

No Docker engine here: these tests read the files (PyYAML resolves the anchors and merge keys as Compose does).
"""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

REQUIRED_SERVICES = {"postgres", "redis", "kafka", "rabbitmq", "nats", "sqs", "web", "worker", "beat"}
APP_SERVICES = ("web", "worker", "beat")
CONSOLE_ENV = (
    "DATABASE_URL",
    "REDIS_URL",
    "SWITCHYARD_CONNECTIONS",
    "SECRET_KEY",
    "DEBUG",
    "ALLOWED_HOSTS",
)


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def _environment(service: dict) -> dict[str, str]:
    """Compose accepts a mapping or a list of NAME=value strings."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return env


def _command(service: dict) -> list[str]:
    command = service.get("command") or []
    return command.split() if isinstance(command, str) else [str(part) for part in command]


def test_it_has_every_required_service(services):
    assert REQUIRED_SERVICES <= set(services)


def test_it_runs_kafka_in_kraft_mode(services):
    kafka = services["kafka"]
    env = _environment(kafka)

    assert kafka["image"].startswith("apache/kafka:")
    assert "controller" in env["KAFKA_PROCESS_ROLES"].split(",")
    assert "broker" in env["KAFKA_PROCESS_ROLES"].split(",")
    assert "KAFKA_ZOOKEEPER_CONNECT" not in env
    assert "kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]


def test_it_enables_jetstream_on_nats(services):
    assert "-js" in _command(services["nats"])


def test_it_uses_the_rabbitmq_management_image(services):
    assert "management" in services["rabbitmq"]["image"]


@pytest.mark.parametrize("name", APP_SERVICES)
def test_it_builds_app_services_from_the_dockerfile(services, name):
    build = services[name]["build"]
    if isinstance(build, str):
        assert (ROOT / build / "Dockerfile").is_file()
    else:
        assert build.get("dockerfile", "Dockerfile") == "Dockerfile"
        assert (ROOT / build.get("context", ".")).resolve() == ROOT


@pytest.mark.parametrize("name", APP_SERVICES)
def test_it_gives_app_services_every_console_variable(services, name):
    env = _environment(services[name])

    missing = [var for var in CONSOLE_ENV if var not in env]
    assert not missing, f"{name} lacks {missing}"


def test_it_gives_app_services_the_same_environment(services):
    web, worker, beat = (_environment(services[name]) for name in APP_SERVICES)
    assert web == worker == beat


def test_it_points_app_services_at_the_compose_hosts(services):
    env = _environment(services["web"])

    assert "@postgres:" in env["DATABASE_URL"]
    assert env["REDIS_URL"].startswith("redis://redis:")


@pytest.mark.parametrize("name", APP_SERVICES)
def test_it_connects_the_app_services_through_a_connections_file(services, name):
    """The mounted file is read as the console reads it, with the compose environment for its ${VAR} secrets."""
    from brokers.connections import load

    env = _environment(services[name])
    mounts = dict(volume.rsplit(":", 1)[0].split(":", 1) for volume in services[name]["volumes"])
    host_path = next(h for h, inside in mounts.items() if inside == env["SWITCHYARD_CONNECTIONS"])
    specs = load(ROOT / host_path, env)
    assert sorted(specs) == ["kafka", "nats", "rabbitmq", "sqs"]
    assert specs["kafka"]["default"].bootstrap_servers == ["kafka:9092"]
    assert specs["sqs"]["default"].endpoint_url.startswith("http://sqs:")
    rabbit = specs["rabbitmq"]["default"]
    assert "@rabbitmq:" in rabbit.url.get_secret_value() and rabbit.management_username == "switchyard"
    assert specs["nats"]["default"].servers == ["nats://nats:4222"]


def test_it_runs_the_expected_processes(services):
    assert "daphne" in _command(services["web"])
    assert "console.asgi:application" in _command(services["web"])
    assert _command(services["worker"])[:4] == ["celery", "-A", "console", "worker"]
    assert _command(services["beat"])[:4] == ["celery", "-A", "console", "beat"]


@pytest.mark.parametrize("name", APP_SERVICES)
def test_it_waits_for_healthy_postgres_and_redis(services, name):
    depends_on = services[name]["depends_on"]

    assert depends_on["postgres"]["condition"] == "service_healthy"
    assert depends_on["redis"]["condition"] == "service_healthy"


def test_it_healthchecks_postgres_and_redis(services):
    assert services["postgres"]["healthcheck"]["test"]
    assert services["redis"]["healthcheck"]["test"]


def test_it_runs_migrations_before_the_app_starts(services):
    assert "migrate" in _command(services["migrate"])
    for name in APP_SERVICES:
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_it_installs_requirements_in_the_dockerfile(dockerfile):
    assert "FROM python:3.11-slim" in dockerfile
    assert "pip install -r requirements.txt" in dockerfile
    assert "collectstatic" in dockerfile
