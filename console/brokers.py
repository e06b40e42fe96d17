"""The console's door to the broker adapters: built once per process from settings.BROKERS.

Apps ask here for an adapter by name and never import a broker client themselves.
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings

from brokers.base import BrokerAdapter, Health

BROKER_NAMES = ("kafka", "sqs", "rabbitmq", "nats")
_lock = threading.Lock()
_adapters: dict[str, BrokerAdapter] | None = None
_pid: int | None = None


class NotConfigured(Exception):
    pass


def configured() -> dict[str, BrokerAdapter]:
    """Adapters for the configured brokers. Rebuilt after a fork, since broker clients do not survive one."""
    global _adapters, _pid
    with _lock:
        if _adapters is None or _pid != os.getpid():
            from brokers.registry import build_adapters

            _adapters, _pid = build_adapters(settings.BROKERS), os.getpid()
        return _adapters


def get(name: str) -> BrokerAdapter:
    adapter = configured().get(name)
    if adapter is None:
        raise NotConfigured(f"the {name} broker is not configured")
    return adapter


def reset() -> None:
    """Close and forget every adapter (tests that change settings.BROKERS call this)."""
    global _adapters
    with _lock:
        for adapter in (_adapters or {}).values():
            try:
                adapter.close()
            except Exception:
                pass
        _adapters = None


def health_all() -> dict[str, Health | None]:
    """Health of every broker, checked in parallel; None for a broker that is not configured."""
    adapters = configured()
    result: dict[str, Health | None] = dict.fromkeys(BROKER_NAMES)
    with ThreadPoolExecutor(max_workers=len(BROKER_NAMES)) as pool:
        futures = {name: pool.submit(adapter.health) for name, adapter in adapters.items()}
        for name, future in futures.items():
            result[name] = future.result()
    return result
