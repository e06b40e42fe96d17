"""The Consumers list: a name search beside the status and broker filters, and a live socket that appends only the new
targets its page's filter shows (it used to append every new one, whatever the filter)."""

from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator

from console.live import broadcast
from monitoring.consumers import ConsumersConsumer
from monitoring.models import ConsumerTarget


def _target(broker: str, name: str, status: str = "OK") -> ConsumerTarget:
    kind = ConsumerTarget.Kind.GROUP if broker == "kafka" else ConsumerTarget.Kind.QUEUE
    return ConsumerTarget.objects.create(
        broker=broker, connection="default", kind=kind, name=name, status=status, lag=3
    )


def test_it_searches_consumers_by_name_within_the_other_filters(world):
    _target("kafka", "billing-workers")
    _target("kafka", "shipping-workers", status="WARN")
    _target("rabbitmq", "billing.dlq")
    client = world.client(world.viewer)

    def names(query: str) -> list[str]:
        html = client.get(f"/consumers/?{query}").content.decode()
        return sorted(part.split('"', 1)[0] for part in html.split('data-name="')[1:])

    assert names("q=BILLING") == ["billing-workers", "billing.dlq"]
    assert names("q=billing&broker=kafka") == ["billing-workers"]
    assert names("q=workers&status=bad") == ["shipping-workers"]
    html = client.get("/consumers/?q=nothing-like-this").content.decode()
    assert "Nothing matches this filter." in html
    # The page's socket carries the same filter, and a filter change swaps the whole live block (socket included).
    assert (
        'ws-connect="/ws/consumers/?broker=kafka&amp;q=billing"'
        in client.get("/consumers/?broker=kafka&q=billing").content.decode()
    )
    fragment = client.get("/consumers/?q=billing", headers={"HX-Request": "true"}).content.decode()
    assert fragment.lstrip().startswith('<div hx-ext="ws" ws-connect="/ws/consumers/?q=billing" id="consumers-live">')


def test_it_appends_only_new_targets_the_pages_filter_shows(transactional_db, world):
    async def watch(path: str):
        communicator = WebsocketCommunicator(ConsumersConsumer.as_asgi(), path)
        communicator.scope["user"] = world.viewer
        connected, _ = await communicator.connect()
        assert connected

        def sample():
            kafka = _target("kafka", "orders-live")
            rabbit = _target("rabbitmq", "orders-live.q")
            other = _target("kafka", "payments-live")
            broadcast("consumers", {"type": "consumers", "targets": [], "new": [kafka.pk, rabbit.pk, other.pk]})

        await sync_to_async(sample)()
        first = await communicator.receive_from(timeout=5)
        nothing_else = await communicator.receive_nothing(timeout=1)
        await communicator.disconnect()
        return first, nothing_else

    first, nothing_else = async_to_sync(watch)("/ws/consumers/?broker=kafka&q=orders")
    assert first.startswith('<tbody hx-swap-oob="beforeend:#consumer-rows">')
    assert first.count('data-testid="consumer-row"') == 1 and 'data-name="orders-live"' in first
    assert nothing_else

    ConsumerTarget.objects.all().delete()
    first, nothing_else = async_to_sync(watch)("/ws/consumers/")  # no filter: every new target
    assert first.count('data-testid="consumer-row"') == 3 and nothing_else
