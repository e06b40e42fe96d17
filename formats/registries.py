"""Schema registries, one per Kafka connection that names one (`schema_registry:` in the connections file): the
SchemaRegistryClient that confluent-kafka ships, built once per process and kept, so its schema cache makes the
registry a round trip per schema id, not per message."""

from __future__ import annotations

import threading

from confluent_kafka.schema_registry import SchemaRegistryClient

from brokers.connections import SchemaRegistry

_lock = threading.Lock()
_clients: dict[SchemaRegistry, SchemaRegistryClient] = {}
_versions: dict[tuple[int, int], tuple[str, int] | None] = {}


def spec_for(connection_key: str) -> SchemaRegistry | None:
    """The registry the connection ("kafka:prod-eu") is configured with, or None."""
    from console import brokers

    kind, _, name = connection_key.partition(":")
    try:
        spec = brokers.connection(kind, name or None).spec
    except Exception:  # noqa: BLE001 - a connection gone from the file has no registry either
        return None
    return getattr(spec, "schema_registry", None)


def client(spec: SchemaRegistry) -> SchemaRegistryClient:
    with _lock:
        found = _clients.get(spec)
        if found is None:
            found = _clients[spec] = SchemaRegistryClient(spec.client_conf())
        return found


def client_for(connection_key: str) -> SchemaRegistryClient | None:
    spec = spec_for(connection_key)
    return client(spec) if spec is not None else None


def subject_version(registry: SchemaRegistryClient, schema_id: int) -> tuple[str, int] | None:
    """(subject, version) a schema id is registered as (its first, when several subjects share it), cached; None
    when the registry does not say (an older registry without `/schemas/ids/{id}/versions`)."""
    key = (id(registry), schema_id)
    if key in _versions:
        return _versions[key]
    try:
        pairs = registry.get_schema_versions(schema_id)
        found = (pairs[0].subject, pairs[0].version) if pairs else None
    except Exception:  # noqa: BLE001 - the version is a nicety; the id still names the schema
        found = None
    _versions[key] = found
    return found


def reset() -> None:
    with _lock:
        _clients.clear()
        _versions.clear()
