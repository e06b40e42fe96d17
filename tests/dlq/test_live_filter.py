"""An open inbox takes new dead letters live only where its filter shows them (it used to insert every new one on
top, whatever the filter); the groups page's live refresh keeps its filter."""

from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from console.live import broadcast
from dlq.consumers import DeadLettersConsumer
from dlq.models import DeadLetter, DeadLetterSource


def _arrive(*letters: tuple[str, str]) -> list[int]:
    """Dead letters (origin, body text) ingested in one batch, and the broadcast ingest sends after its commit."""
    source, _ = DeadLetterSource.objects.get_or_create(broker="kafka", destination="live.DLQ")
    now = timezone.now()
    rows = DeadLetter.objects.bulk_create(
        DeadLetter(
            source=source,
            origin=origin,
            message_id=f"0:{DeadLetter.objects.count() + i}",
            body=text.encode(),
            body_text=text,
            first_failure_at=now,
            last_failure_at=now,
            fingerprint=f"fp-{origin}",
        )
        for i, (origin, text) in enumerate(letters)
    )
    broadcast("dlq", {"type": "dead_letters", "ids": [row.pk for row in rows]})
    return [row.pk for row in rows]


def _watch(world, path: str, *letters) -> tuple[str, bool, list[int]]:
    async def watch():
        communicator = WebsocketCommunicator(DeadLettersConsumer.as_asgi(), path)
        communicator.scope["user"] = world.viewer
        connected, _ = await communicator.connect()
        assert connected
        ids = await sync_to_async(_arrive)(*letters)
        first = await communicator.receive_from(timeout=5)
        nothing_else = await communicator.receive_nothing(timeout=0.5)
        await communicator.disconnect()
        return first, nothing_else, ids

    return async_to_sync(watch)()


def test_it_inserts_only_the_new_dead_letters_the_inbox_filter_shows(transactional_db, world):
    letters = ("orders", "payment timeout"), ("orders", "bad card"), ("refunds", "timeout")
    first, nothing_else, ids = _watch(world, "/ws/dlq/?origin=orders&q=timeout", *letters)
    assert first.count('hx-swap-oob="afterbegin:#dl-rows"') == 1 and nothing_else
    assert f'id="dl-{ids[0]}"' in first  # full-text and origin filters, judged by Postgres
    assert 'hx-get="/dead-letters/groups/?origin=orders&amp;q=timeout"' in first

    first, _, _ = _watch(world, "/ws/dlq/", ("orders", "a"), ("refunds", "b"))  # no filter: every new one
    assert first.count('hx-swap-oob="afterbegin:#dl-rows"') == 2

    first, _, _ = _watch(world, "/ws/dlq/?since=not-a-date", ("orders", "c"))  # the page lists nothing: so does live
    assert "afterbegin:#dl-rows" not in first and 'hx-get="/dead-letters/groups/"' in first


def test_it_gives_the_inbox_and_groups_sockets_the_pages_filter(world):
    client = world.client(world.viewer)
    assert 'ws-connect="/ws/dlq/?origin=orders"' in client.get("/dead-letters/?origin=orders").content.decode()
    assert 'ws-connect="/ws/dlq/?origin=orders"' in client.get("/dead-letters/groups/?origin=orders").content.decode()
    assert 'ws-connect="/ws/dlq/"' in client.get("/dead-letters/?since=not-a-date").content.decode()
