"""Which dead-letter sources this `dlq_ingest` process reads, when several run side by side: a console.leases.Share
of the enabled sources (an equal share each; a dead process's sources move to the others within a lease period).

A SIGKILLed process's last batch, stored and not acked, is read again by the next holder (Kafka: from the group's
committed offsets) and dropped by the unique (source, message id): nothing is lost, nothing is stored twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from django.conf import settings

from console.leases import Share

KIND = "dlq-ingest"
SOURCE = f"{KIND}:item:"  # the lease of source 7 is "dlq-ingest:item:7"


class SourceLeases:
    def __init__(self, ttl: float | None = None, on_lost: Callable[[int], None] | None = None):
        lost = on_lost or (lambda source_id: None)
        self.share = Share(
            KIND, ttl if ttl is not None else settings.DLQ_INGEST_LEASE_SECONDS, lambda item: lost(int(item))
        )

    def due(self) -> bool:
        return self.share.due()

    def current(self) -> set[int]:
        return {int(item) for item in self.share.current()}

    def tick(self, source_ids: Iterable[int]) -> None:
        self.share.tick(str(source_id) for source_id in source_ids)

    def release_all(self) -> None:
        self.share.release_all()
