import time
import uuid

import pytest

from brokers.base import BrokerAdapter
from console import brokers
from dlq import ingest


def wait_until(check, seconds: float = 30, step=None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if step:
            step()
        else:
            time.sleep(0.1)
    raise AssertionError(f"not true within {seconds} s")


@pytest.fixture
def destinations():
    """make(broker, name=None, **options) -> an ensured destination, deleted afterwards."""
    made: list[tuple[BrokerAdapter, str]] = []

    def make(broker: str, name: str | None = None, **options) -> str:
        adapter = brokers.get(broker)
        name = name or f"sy-{uuid.uuid4().hex[:10]}"
        adapter.ensure_destination(name, **options)
        made.append((adapter, name))
        return name

    yield make
    ingest.close_all()
    for adapter, name in made:
        try:
            adapter.delete_destination(name)
        except Exception:
            pass
