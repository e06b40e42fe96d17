"""The Redis channel layer with a connection pool that waits when it is full instead of failing.

redis-py 8's asyncio ConnectionPool holds at most 100 connections (it was unbounded before) and raises
MaxConnectionsError the moment one more is asked for. With async consumers every socket that opens calls
group_add at the same time, so 100 pages connecting at once, plus the connection the layer's receive loop keeps
blocked on Redis, asked for 101: one handshake ended in an HTTP 500 (docs/decisions/0043). A blocking pool makes
the burst queue for a few milliseconds instead.
"""

from channels_redis.core import RedisChannelLayer
from redis.asyncio import BlockingConnectionPool

# Per process and event loop; Redis's own limit (maxclients, 10,000 by default) is far above it.
MAX_CONNECTIONS = 200
# How long a channel-layer call may wait for a free connection before it fails for real.
POOL_TIMEOUT = 10.0


class BlockingRedisChannelLayer(RedisChannelLayer):
    def create_pool(self, index):
        host = dict(self.hosts[index])
        if "address" not in host:
            # Sentinel or keyword hosts keep channels_redis's own pool.
            return super().create_pool(index)
        address = host.pop("address")
        host.setdefault("max_connections", MAX_CONNECTIONS)
        host.setdefault("timeout", POOL_TIMEOUT)
        return BlockingConnectionPool.from_url(address, **host)
