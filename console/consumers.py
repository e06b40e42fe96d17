"""WebSocket consumers: one per stream. Each checks the user's role on connect and again before it answers a
broadcast (at most every RECHECK_SECONDS, and at once when the user logs out or their groups change), and answers
every broadcast payload with a server-rendered fragment that htmx's ws extension swaps in by id (hx-swap-oob)."""

import asyncio
import time
import uuid
from types import SimpleNamespace
from urllib.parse import unquote

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.http import QueryDict
from django.template.loader import render_to_string

from console.access import VIEWER, has_role, roles
from console.live import group_name, user_group

RENDER_TTL = 30.0
# A socket that checked its user less than this long ago sends without checking again: one query per socket every few
# seconds, not one per broadcast. Logging out and a change of groups close or re-check at once (console.live).
RECHECK_SECONDS = 5.0
# The close code for "no longer allowed": as a refused connect, so htmx's reconnect attempts are refused too.
FORBIDDEN = 4403
# (event loop, broadcast id, role context) -> (expiry on the monotonic clock, future of the rendered fragment).
_renders: dict[tuple, tuple[float, asyncio.Future]] = {}


class StreamConsumer(AsyncWebsocketConsumer):
    """Async so that a broadcast to many sockets costs one render: every socket of this process awaits the same
    render of (stream, payload, role context) and only that one render hops to the database thread. Channels runs
    sync consumers' handlers on ONE thread, so with per-socket renders 100 open pages meant 100 renders in a row."""

    stream: str = ""
    role: str = VIEWER

    async def connect(self):
        if "\x00" in unquote(self.scope.get("query_string", b"").decode("latin-1")):
            # The page's filter travels in the query string; PostgreSQL cannot compare a NUL (see console.inputs).
            await self.close(code=4400)
            return
        user = self.scope.get("user")
        allowed = user is not None and await database_sync_to_async(has_role)(user, self.role)
        if not allowed:
            # 4403: the close code browsers see for "forbidden"; an anonymous socket never joins a group.
            await self.close(code=FORBIDDEN)
            return
        self._roles = await database_sync_to_async(self._role_context)()
        self._user_pk = user.pk
        self._session_key = await database_sync_to_async(_session_key)(self.scope)
        self._checked_until = time.monotonic() + RECHECK_SECONDS
        self._shut = False
        self.group = group_name(self.stream)
        self.user_group = user_group(user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.channel_layer.group_add(self.user_group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await self._leave_groups()

    async def _leave_groups(self):
        for name in ("group", "user_group"):
            if hasattr(self, name):
                await self.channel_layer.group_discard(getattr(self, name), self.channel_name)

    async def dispatch(self, message):
        # Before a broadcast is answered, the user must still be allowed: a role removed, a session logged out or
        # expired, a deactivated user — the socket closes instead of sending contents (issue 14).
        if message.get("type") == "live.event" and hasattr(self, "group"):
            if self._shut:
                return  # closed, and still in the group until the layer has dropped it
            if time.monotonic() >= self._checked_until and not await self._still_allowed():
                return
        await super().dispatch(message)

    async def user_recheck(self, event):
        """The user's groups or account changed (console.live.recheck_user): check now, not in RECHECK_SECONDS."""
        if not self._shut:
            await self._still_allowed()

    async def user_logout(self, event):
        """A session of this user logged out: its sockets close. The user's other sessions are not affected."""
        if not self._shut and event.get("session_key") and event["session_key"] == self._session_key:
            await self._close_forbidden()

    async def _still_allowed(self) -> bool:
        context = await database_sync_to_async(self._current_roles)()
        if context is None:
            await self._close_forbidden()
            return False
        self._roles = context  # a role that changed but still suffices: fragments render for the new one
        self._checked_until = time.monotonic() + RECHECK_SECONDS
        return True

    async def _close_forbidden(self):
        self._shut = True
        await self._leave_groups()
        await self.close(code=FORBIDDEN)

    def _current_roles(self) -> dict | None:
        """The role context of the socket's user as the database has it now, or None when they may no longer read
        this stream. With a session (a browser), the user is read through it as Django's auth does on each request:
        a deleted or expired session, or a password changed since the login, gives nobody."""
        if self._session_key:
            from importlib import import_module

            from django.conf import settings
            from django.contrib.auth import get_user

            store = import_module(settings.SESSION_ENGINE).SessionStore(self._session_key)
            user = get_user(SimpleNamespace(session=store))
        else:
            from django.contrib.auth import get_user_model

            user = get_user_model().objects.filter(pk=self._user_pk).first()
        if user is None or not user.is_authenticated or user.pk != self._user_pk or not has_role(user, self.role):
            return None
        self.scope["user"] = user
        return self._role_context()

    async def receive(self, text_data=None, bytes_data=None):
        # The channel is server → browser only; anything the browser sends is ignored.
        return

    async def live_event(self, event):
        html = await self._shared_render(event)
        # A list is sent as separate messages: the browser parses each on its own (table rows that must be
        # appended and rows swapped by id cannot share one fragment: the HTML parser re-nests them).
        for part in [html] if isinstance(html, str) else html or []:
            if part:
                await self.send(text_data=part)

    async def _shared_render(self, event: dict) -> str:
        # Fragments only vary with the payload and the role (templates see `can_act` etc., never the user), so one
        # render per broadcast (broadcast() stamps each with an id) and role serves every socket of this process.
        # Keyed on the broadcast, not the payload: the same payload sent again later must re-read the database.
        if not event.get("id"):
            return await database_sync_to_async(self.render)(event["payload"])
        loop = asyncio.get_running_loop()
        key = (id(loop), event["id"], tuple(sorted(self._roles.items())))
        now = time.monotonic()
        for stale in [k for k, (expires, _) in _renders.items() if expires < now]:
            del _renders[stale]
        entry = _renders.get(key)
        if entry is not None:
            return await asyncio.shield(entry[1])
        future = loop.create_future()
        _renders[key] = (now + RENDER_TTL, future)
        try:
            html = await database_sync_to_async(self.render)(event["payload"])
        except BaseException as e:
            future.set_exception(e)
            future.exception()  # retrieved: the sockets waiting on it see it; nobody else should log it
            raise
        future.set_result(html)
        return html

    def render(self, payload: dict) -> str | list[str]:
        """The fragment for one payload (or a list of fragments, each sent as its own message); each stream's
        consumer overrides this. Empty means send nothing."""
        return ""

    def _role_context(self) -> dict:
        class _Request:
            user = self.scope["user"]

        return roles(_Request)

    def template_context(self) -> dict:
        return dict(self._roles)


class OperationsConsumer(StreamConsumer):
    """An operation's page (`?operation=<id>`) and the Operations list (`?status=<filter>`): each broadcast carries
    the operation's progress and its list row, swapped in by id. On the list, a row of an operation the page does not
    show yet (one just started, by anyone) goes on top when the list's status filter shows it (data-live-match)."""

    stream = "operations"

    async def connect(self):
        await super().connect()
        query = QueryDict(self.scope.get("query_string", b"").decode())
        operation = query.get("operation", "")
        self.operation = operation if _is_uuid(operation) else None
        self.status = query.get("status", "")
        if getattr(self, "group", None) and self.operation:
            # An operation's page was rendered before this socket joined the group: a short operation can finish
            # in between, and its last broadcast would never reach the page. Once joined, send where it stands now.
            rendered = await database_sync_to_async(self.render)({"id": operation})
            if rendered:
                await self.send(text_data=rendered[1])  # its progress

    async def live_event(self, event):
        rendered = await self._shared_render(event)
        if not rendered:
            return
        status, progress, row = rendered
        if self.operation is not None:
            await self.send(text_data=progress)
            return
        if not self.status or status == self.status:
            row = row.replace('<tr id="op-row-', '<tr data-live-match id="op-row-', 1)
        await self.send(text_data=row)

    def render(self, payload):
        """(status, progress fragment, list row) of the operation, shared by every socket; None if it is gone. Two
        fragments, sent as separate messages: a table row parsed after a <div> in one fragment is dropped by the
        HTML parser, so the list's rows were never swapped while they shared a message with the progress bar."""
        from console.models import Operation

        op = Operation.objects.select_related("requested_by").filter(pk=payload["id"]).first()
        if op is None:
            return None
        ctx = {"op": op, "oob": True, **self.template_context()}
        return (
            op.status,
            render_to_string("console/_progress.html", ctx),
            render_to_string("console/_operation_row.html", ctx),
        )


class DashboardConsumer(StreamConsumer):
    stream = "dashboard"

    def render(self, payload):
        from console.dashboard import tiles

        return render_to_string("console/_tiles.html", {"tiles": tiles(), "oob": True})


def _session_key(scope) -> str | None:
    """The key of the browser session the socket came with (channels' SessionMiddleware), if any."""
    session = scope.get("session")
    return getattr(session, "session_key", None) if session is not None else None


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
