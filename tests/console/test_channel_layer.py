"""The channel layer under a burst of WebSocket connects (issue #6: an HTTP 500 on a handshake with 100 clients)."""

import asyncio
import uuid

from channels.layers import channel_layers


def _burst(layer, sockets: int) -> list:
    group = f"burst-{uuid.uuid4().hex[:8]}"

    async def run():
        names = [await layer.new_channel() for _ in range(sockets)]
        try:
            # What StreamConsumer.connect does for every socket, all at once as in a page-load storm.
            return await asyncio.gather(*(layer.group_add(group, name) for name in names), return_exceptions=True)
        finally:
            await asyncio.gather(*(layer.group_discard(group, name) for name in names), return_exceptions=True)
            await layer.close_pools()

    return asyncio.run(run())


def test_it_lets_more_sockets_join_a_group_at_once_than_the_pool_holds():
    # redis-py 8's pool holds 100 connections; the layer must make the 101st and later wait, not fail.
    layer = channel_layers.make_backend("default")
    results = _burst(layer, 250)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == [], f"{len(errors)} of 250 group_add calls failed: {errors[0]!r}"
    assert len(results) == 250
