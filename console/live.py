"""The live channel: typed payloads and a sync `broadcast()` that actions (on commit) and Celery tasks call.

Path: Celery worker or web process → Redis (channels-redis) → daphne's consumer for the stream → browser, where the
htmx ws extension swaps the server-rendered fragment in by id.
"""

import asyncio
import logging
import threading
import uuid
from typing import Literal, NotRequired, TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

log = logging.getLogger(__name__)

Stream = Literal["operations", "dashboard", "sagas", "dlq", "outbox", "consumers"]


class OperationEvent(TypedDict):
    type: Literal["operation"]
    id: str
    status: str
    done: int
    total: NotRequired[int | None]


class DashboardEvent(TypedDict):
    type: Literal["dashboard"]
    tile: str  # which tile changed; the consumer re-renders it from the database


def group_name(stream: str) -> str:
    # Channels group names allow only ASCII alphanumerics, hyphens, underscores and periods.
    return f"{settings.NAMESPACE}.{stream}".replace(":", "_")


def broadcast(stream: Stream, payload: dict) -> None:
    """Send one payload to every socket on `stream`. Never raises: live updates are a nicety; Postgres has the data."""
    layer = get_channel_layer()
    if layer is None:
        return
    # The id lets each daphne process render the fragment once for all its sockets (console/consumers.py).
    message = {"type": "live.event", "payload": payload, "id": uuid.uuid4().hex}

    def send() -> None:
        try:
            async_to_sync(layer.group_send)(group_name(stream), message)
        except Exception:
            log.warning("live broadcast to %s failed", stream, exc_info=True)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        send()
        return
    # This thread runs an event loop (a sync caller under an async host, e.g. Playwright's sync API in the browser
    # tests), where async_to_sync refuses to run: send from a short-lived thread instead.
    sender = threading.Thread(target=send, name="live-broadcast")
    sender.start()
    sender.join(timeout=5)
