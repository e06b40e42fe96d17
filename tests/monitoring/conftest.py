"""Real brokers for the monitoring tests (the adapter fixtures of tests/brokers), and helpers to make lag."""

import uuid

import pytest

from console import brokers
from tests.brokers.conftest import (  # noqa: F401 - fixtures re-exported for this package
    kafka_adapter,
    moto_endpoint,
    nats_adapter,
    new_destination,
    noida_bootstrap,
    noida_kafka_adapter,
    rabbitmq_adapter,
    service_logs,
    sqs_adapter,
    tansu_bootstrap,
    tansu_kafka_adapter,
)


@pytest.fixture
def console_brokers():
    """The console's own adapters (settings.BROKERS, from the environment tools.services sets up)."""
    brokers.reset()
    yield brokers.configured()
    brokers.reset()


@pytest.fixture
def unique():
    return lambda prefix="sy": f"{prefix}-{uuid.uuid4().hex[:10]}"
