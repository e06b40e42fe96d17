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


def user_group(user_id) -> str:
    """Every live socket of one user joins this group, so a logout or a change of their groups reaches them."""
    return f"{settings.NAMESPACE}.user.{user_id}".replace(":", "_")


def recheck_user(user_id) -> None:
    """Tell the user's open sockets to check the user again now: one whose role is gone closes."""
    _send(user_group(user_id), {"type": "user.recheck"})


def close_session_sockets(user_id, session_key: str | None) -> None:
    """A session logged out: its sockets close (a logout must not leave a page receiving contents)."""
    if session_key:
        _send(user_group(user_id), {"type": "user.logout", "session_key": session_key})


def broadcast(stream: Stream, payload: dict) -> None:
    """Send one payload to every socket on `stream`. Never raises: live updates are a nicety; Postgres has the data."""
    # The id lets each daphne process render the fragment once for all its sockets (console/consumers.py).
    _send(group_name(stream), {"type": "live.event", "payload": payload, "id": uuid.uuid4().hex})


def _send(group: str, message: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return

    def send() -> None:
        try:
            async_to_sync(layer.group_send)(group, message)
        except Exception:
            log.warning("live message to %s failed", group, exc_info=True)

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


# --- who may still read: the signals that make open sockets check their user at once ---


def on_logged_out(sender, request, user, **kwargs) -> None:
    # Sent before the session is flushed: the sockets are told which session ended rather than left to find out.
    if user is not None:
        close_session_sockets(user.pk, getattr(request.session, "session_key", None))


def on_groups_changed(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    # user.groups.remove(g) (instance: the user) or group.user_set.remove(u) (instance: the group, pk_set: users).
    # A clear from the group's side names no users: the sockets find out at their next check.
    users = [instance.pk] if not reverse else list(pk_set or [])
    _after_commit(users)


def on_user_changed(sender, instance, **kwargs) -> None:
    if kwargs.get("update_fields") == frozenset({"last_login"}):
        return  # every login saves this: nothing that changes what the user may read
    _after_commit([instance.pk])  # deactivated, no longer a superuser, a new password: check again


def _after_commit(user_ids) -> None:
    from django.db import transaction

    if user_ids:
        transaction.on_commit(lambda: [recheck_user(pk) for pk in user_ids])
