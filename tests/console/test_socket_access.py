"""A live socket checks its user again, not only when it connects: a user whose role is removed, whose session logs
out or expires, stops receiving contents — the socket closes (4403) instead. Real Channels: the Redis channel layer,
the consumers, and (for sessions) the whole ASGI application with its session and auth middleware."""

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client

from console import consumers
from console.consumers import DashboardConsumer
from console.live import broadcast

TILE = {"type": "dashboard", "tile": "sagas"}
CLOSED = {"type": "websocket.close", "code": 4403}


def _socket(user) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(DashboardConsumer.as_asgi(), "/ws/dashboard/")
    communicator.scope["user"] = user
    return communicator


def _browser_socket(session_key: str) -> WebsocketCommunicator:
    """As a browser opens it: through console.asgi (origin check, session cookie, auth)."""
    from console.asgi import application

    headers = [
        (b"origin", b"http://testserver"),
        (b"host", b"testserver"),
        (b"cookie", f"sessionid={session_key}".encode()),
    ]
    return WebsocketCommunicator(application, "/ws/dashboard/", headers=headers)


def _logged_in(user) -> tuple[Client, str]:
    client = Client()
    client.force_login(user)
    return client, client.cookies["sessionid"].value


async def _receives_contents(communicator) -> bool:
    await sync_to_async(broadcast)("dashboard", TILE)
    return "hx-swap-oob" in await communicator.receive_from(timeout=10)


def test_it_closes_the_socket_at_once_when_the_users_role_is_removed(transactional_db, world):
    async def scenario():
        socket, other = _socket(world.viewer), _socket(world.operator)
        assert (await socket.connect())[0] and (await other.connect())[0]
        assert await _receives_contents(socket)
        await other.receive_from(timeout=10)
        await sync_to_async(world.viewer.groups.clear)()  # the admin takes the role away
        assert await socket.receive_output(timeout=10) == CLOSED
        await sync_to_async(broadcast)("dashboard", TILE)
        assert "hx-swap-oob" in await other.receive_from(timeout=10)  # somebody else's socket is untouched
        assert await socket.receive_nothing(timeout=1)
        await other.disconnect()

    async_to_sync(scenario)()


def test_it_checks_the_role_before_sending_even_when_no_signal_said_it_changed(transactional_db, world, monkeypatch):
    monkeypatch.setattr(consumers, "RECHECK_SECONDS", 0.0)

    async def scenario():
        socket = _socket(world.viewer)
        assert (await socket.connect())[0]
        assert await _receives_contents(socket)

        def remove_behind_djangos_back():  # a raw SQL change sends no signal: the per-message check must see it
            with connection.cursor() as cursor:
                cursor.execute("DELETE FROM auth_user_groups WHERE user_id = %s", [world.viewer.pk])

        await sync_to_async(remove_behind_djangos_back)()
        await sync_to_async(broadcast)("dashboard", TILE)
        assert await socket.receive_output(timeout=10) == CLOSED  # the close, not the contents

    async_to_sync(scenario)()


def test_it_closes_the_sockets_of_a_session_that_logs_out_and_only_those(transactional_db, world):
    client, key = _logged_in(world.viewer)
    _, other_key = _logged_in(world.viewer)  # the same user in another browser

    async def scenario():
        socket, elsewhere = _browser_socket(key), _browser_socket(other_key)
        assert (await socket.connect())[0] and (await elsewhere.connect())[0]
        assert await _receives_contents(socket)
        await elsewhere.receive_from(timeout=10)
        response = await sync_to_async(client.post)("/logout/")
        assert response.status_code == 302
        assert await socket.receive_output(timeout=10) == CLOSED
        assert await _receives_contents(elsewhere)  # the other session still reads
        assert await socket.receive_nothing(timeout=1)
        await elsewhere.disconnect()

    async_to_sync(scenario)()


def test_it_closes_a_socket_whose_session_expired_or_was_deleted(transactional_db, world, monkeypatch):
    monkeypatch.setattr(consumers, "RECHECK_SECONDS", 0.0)
    _, key = _logged_in(world.operator)

    async def scenario():
        socket = _browser_socket(key)
        assert (await socket.connect())[0]
        assert await _receives_contents(socket)
        await sync_to_async(Session.objects.filter(session_key=key).delete)()  # no logout, no signal
        await sync_to_async(broadcast)("dashboard", TILE)
        assert await socket.receive_output(timeout=10) == CLOSED

    async_to_sync(scenario)()


def test_it_refuses_the_reconnect_of_a_logged_out_session(transactional_db, world):
    client, key = _logged_in(world.viewer)
    client.post("/logout/")

    async def scenario():
        socket = _browser_socket(key)
        connected, code = await socket.connect()
        return connected, code

    assert async_to_sync(scenario)() == (False, 4403)


@pytest.mark.parametrize("change", ["deactivate", "demote"])
def test_it_rechecks_when_the_account_changes(transactional_db, world, change):
    async def scenario():
        socket = _socket(world.admin)
        assert (await socket.connect())[0]
        assert await _receives_contents(socket)

        def apply():
            if change == "deactivate":
                world.admin.is_active = False
                world.admin.save()
            else:  # from admin to viewer: still allowed on the dashboard, the socket stays
                world.admin.groups.clear()
                world.admin.groups.add(world.viewer.groups.get())

        await sync_to_async(apply)()
        if change == "deactivate":
            assert await socket.receive_output(timeout=10) == CLOSED
        else:
            assert await socket.receive_nothing(timeout=1)
            assert await _receives_contents(socket)
            await socket.disconnect()

    async_to_sync(scenario)()
