"""The console's door to the broker connections: one adapter per named connection, built from settings.BROKERS.

A connection is a kind and a name the operator gave (`kafka:prod-eu`, README "Connections"); everything the console
stores about a broker is keyed by it. Apps ask here for an adapter by kind and connection name and never import a
broker client themselves. A name left empty means the kind's only connection, or the one called `default`.
"""

from __future__ import annotations

import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.conf import settings

from brokers.base import ERROR, BrokerAdapter, BrokerConfigError, Health
from brokers.connections import DEFAULT, KINDS, ConnectionSpec, split_key

BROKER_NAMES = KINDS
_lock = threading.Lock()
_adapters: dict[tuple[str, str], BrokerAdapter] = {}
_pid: int | None = None


class NotConfigured(Exception):
    pass


@dataclass(frozen=True)
class Connection:
    kind: str
    name: str
    spec: ConnectionSpec

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"

    def __str__(self) -> str:
        return self.key

    def describe(self) -> dict:
        """What the brokers page and the API may show: address, how it authenticates, TLS. Never a secret."""
        return {"kind": self.kind, "name": self.name, "connection": self.key, **self.spec.describe()}

    def adapter(self) -> BrokerAdapter:
        return _adapter(self)


@functools.lru_cache(maxsize=64)
def _kind_capabilities(kind: str) -> frozenset:
    from brokers.registry import adapter_class

    return adapter_class(kind).capabilities


def kind_supports(key: str, capability) -> bool:
    """Whether the adapter of a kind ("kafka") or connection key ("kafka:prod-eu") can do `capability`: a class-level
    answer, so hot paths ask it per message without building or reaching any client."""
    kind = key.partition(":")[0]
    return kind in KINDS and capability in _kind_capabilities(kind)


def connections(kind: str | None = None) -> list[Connection]:
    """Every configured connection (of one kind), in kind order then by name."""
    found = []
    for each in KINDS if kind is None else (kind,):
        for name, spec in sorted(settings.BROKERS.get(each, {}).items()):
            found.append(Connection(each, name, spec))
    return found


def default_name(kind: str) -> str | None:
    """The connection an unnamed reference to `kind` means: its only one, else the one called `default`."""
    names = settings.BROKERS.get(kind, {})
    if len(names) == 1:
        return next(iter(names))
    return DEFAULT if DEFAULT in names else None


def connection(kind: str, name: str | None = None) -> Connection:
    """The connection `kind`/`name` (name empty: the kind's default); NotConfigured when there is none."""
    if kind not in KINDS:
        raise NotConfigured(f"{kind!r} is not a kind of broker; known: {', '.join(KINDS)}")
    specs = settings.BROKERS.get(kind, {})
    resolved = name or default_name(kind)
    if resolved is None or resolved not in specs:
        if not specs:
            raise NotConfigured(f"no {kind} connection is configured")
        if not name:
            raise NotConfigured(
                f"{kind} has several connections and none is called {DEFAULT!r}: name one of {', '.join(sorted(specs))}"
            )
        raise NotConfigured(f"no {kind} connection is called {name!r}; configured: {', '.join(sorted(specs))}")
    return Connection(kind, resolved, specs[resolved])


def by_key(key: str) -> Connection:
    """`kafka:prod-eu` (or `kafka` for its default) → the connection."""
    kind, name = split_key(key)
    return connection(kind, name or None)


def is_configured(kind: str, name: str | None = None) -> bool:
    try:
        connection(kind, name)
    except NotConfigured:
        return False
    return True


def get(kind: str, name: str | None = None) -> BrokerAdapter:
    """The adapter of connection `kind`/`name` (name empty: the kind's default)."""
    return _adapter(connection(kind, name))


def _adapter(conn: Connection) -> BrokerAdapter:
    """Built on first use and kept; rebuilt after a fork, since broker clients do not survive one."""
    global _pid
    with _lock:
        if _pid != os.getpid():
            _adapters.clear()  # the parent's: not ours to close
            _pid = os.getpid()
        adapter = _adapters.get((conn.kind, conn.name))
        if adapter is None:
            from brokers.registry import adapter_class

            args, kwargs = conn.spec.adapter_args()
            try:
                adapter = adapter_class(conn.kind)(*args, **kwargs)
            except BrokerConfigError as exc:
                # A setting the adapter cannot use: this connection is unusable, the others are not.
                raise NotConfigured(f"{conn.key}: {scrub(str(exc))}") from None
            _adapters[(conn.kind, conn.name)] = adapter
        return adapter


def adapters(kind: str | None = None) -> list[tuple[Connection, BrokerAdapter]]:
    """(connection, adapter) for every configured connection (of one kind); creating an adapter does not connect."""
    return [(conn, conn.adapter()) for conn in connections(kind)]


def defaults() -> dict[str, BrokerAdapter]:
    """kind → the adapter of its only or default connection, for the kinds that have one: what the demo runs on,
    and what a test or bench means by "the Kafka"."""
    return {kind: get(kind) for kind in KINDS if is_configured(kind)}


def reset() -> None:
    """Close and forget every adapter (tests that change settings.BROKERS call this)."""
    with _lock:
        for adapter in _adapters.values() if _pid == os.getpid() else ():
            try:
                adapter.close()
            except Exception:  # noqa: BLE001 - a client that fails to close is gone all the same
                pass
        _adapters.clear()


def health(conn: Connection) -> Health:
    """The connection's health; never raises (a connection whose settings its adapter refuses is unreachable)."""
    try:
        return conn.adapter().health()
    except NotConfigured as exc:
        return Health(conn.kind, False, None, None, None, str(exc), ERROR)


def health_all() -> dict[str, Health]:
    """Health of every connection by key, checked in parallel: one slow or failing connection delays no other
    beyond its own HEALTH_TIMEOUT, and fails only its own row."""
    found = connections()
    if not found:
        return {}
    with ThreadPoolExecutor(max_workers=min(16, len(found))) as pool:
        futures = {conn.key: pool.submit(health, conn) for conn in found}
        return {key: future.result() for key, future in futures.items()}


def split_destination(text: str) -> tuple[str, str]:
    """ "kafka:prod-eu/orders" → ("kafka:prod-eu", "orders"); "kafka:orders" → ("kafka", "orders"): a first path part
    that is not a configured connection of the kind belongs to the destination (RabbitMQ names may hold a "/").
    SNS lives on sqs connections (an AWS account and region): "sns:prod/orders" → ("sqs:prod", "sns:orders"), and
    "sns:orders/<subscription id>" names one subscription of the default connection's topic."""
    kind, _, rest = text.partition(":")
    if kind == "sns":
        name, slash, topic = rest.partition("/")
        if slash and name in settings.BROKERS.get("sqs", {}):
            return f"sqs:{name}", f"sns:{topic}"
        return "sqs", f"sns:{rest}"
    name, slash, destination = rest.partition("/")
    if slash and name in settings.BROKERS.get(kind, {}):
        return f"{kind}:{name}", destination
    return kind, rest


_secrets: tuple[int, list[str]] | None = None


def scrub(text: str) -> str:
    """`text` with every secret of the configured connections replaced by ***: client libraries put what they were
    given into their error texts (a URL with its password, a SASL username and password), and those texts reach
    pages, the API, operations' errors and log lines."""
    global _secrets
    if not text:
        return text
    if _secrets is None or _secrets[0] != id(settings.BROKERS):
        from brokers.connections import secret_values

        # Longest first, so a password inside a longer secret (a URL) is not half replaced.
        _secrets = (id(settings.BROKERS), sorted(secret_values(settings.BROKERS), key=len, reverse=True))
    for secret in _secrets[1]:
        if secret in text:
            text = text.replace(secret, "***")
    return text


def report(conn: Connection, health: Health) -> dict:
    """One connection as the brokers page and GET /api/v1/brokers show it; never a secret."""
    reason = getattr(health, "reason", None)  # the failure in words, where the adapter tells it
    return {
        **conn.describe(),
        "configured": True,
        "reachable": health.reachable,
        "version": health.version,
        "latency_ms": health.latency_ms,
        "destinations": health.destinations,
        "reason": None if health.reachable else (reason or "error"),
        "error": scrub(health.error) if health.error else None,
    }


def reports() -> list[dict]:
    """Every configured connection with its health (checked in parallel), then each kind that has none."""
    health = health_all()
    rows = [report(conn, health[conn.key]) for conn in connections()]
    have = {row["kind"] for row in rows}
    rows += [
        {"kind": kind, "name": None, "connection": kind, "configured": False} for kind in KINDS if kind not in have
    ]
    return rows
