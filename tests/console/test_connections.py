"""Two Kafka-compatible brokers at once as two named connections (noida-db as `kafka:default`, tansu as
`kafka:second`): dead letters from each are ingested and replayed each to its own cluster, lag is reported per
cluster, and the brokers page, API, /healthz and /metrics keep them apart. Topic and group names are the same on both
clusters on purpose: only the connection tells them apart."""

import uuid

import pytest

from brokers.connections import KafkaConnection
from console import brokers
from console.operations import execute
from dlq import discovery, ingest
from dlq.models import DeadLetter, DeadLetterSource, ReplayRecord
from monitoring.models import ConsumerTarget
from monitoring.sampler import sample_all
from tests.brokers.conftest import noida_bootstrap, service_logs, tansu_bootstrap  # noqa: F401 - fixtures
from tests.dlq.conftest import wait_until


@pytest.fixture
def two_clusters(settings, noida_bootstrap, tansu_bootstrap):  # noqa: F811 - fixtures
    """settings.BROKERS with Kafka as two connections; each yielded as (connection key, adapter)."""
    kafka = {
        "default": KafkaConnection(bootstrap_servers=noida_bootstrap),
        "second": KafkaConnection(bootstrap_servers=tansu_bootstrap),
    }
    settings.BROKERS = {**settings.BROKERS, "kafka": kafka}
    brokers.reset()
    made = []
    yield made
    ingest.close_all()
    for adapter, name in made:
        try:
            adapter.delete_destination(name)
        except Exception:  # noqa: BLE001 - clean-up is best effort
            pass
    brokers.reset()


def _topics(made, base: str) -> dict[str, object]:
    found = {}
    for name in ("default", "second"):
        adapter = brokers.get("kafka", name)
        for topic in (base, base + ".DLQ"):
            adapter.ensure_destination(topic)
            made.append((adapter, topic))
        found[name] = adapter
    return found


def test_it_ingests_and_replays_dead_letters_of_each_cluster_on_its_own(world, two_clusters):
    base = f"sy-{uuid.uuid4().hex[:10]}"
    adapters = _topics(two_clusters, base)
    for name, adapter in adapters.items():
        adapter.publish(base + ".DLQ", f'{{"from": "{name}"}}'.encode(), key="k", headers={"x-event-id": name})

    discovery.discover()
    sources = {s.connection: s for s in DeadLetterSource.objects.filter(broker="kafka", destination=base + ".DLQ")}
    assert sorted(sources) == ["default", "second"]
    letters = {}
    for name, source in sources.items():
        letters[name] = wait_until(
            lambda source=source: ingest.run_once(source) and DeadLetter.objects.filter(source=source).first(), 30
        )
        assert letters[name].body_bytes() == f'{{"from": "{name}"}}'.encode()
        assert letters[name].origin == base
    api = world.client(world.viewer).get("/api/v1/dead-letters", {"connection": "kafka:second"}).json()
    assert [d["id"] for d in api["dead_letters"]] == [letters["second"].pk]
    assert api["dead_letters"][0]["connection"] == "kafka:second"

    client = world.client(world.operator)
    body = {"ids": [d.pk for d in letters.values()], "reason": "fixed", "idempotency_key": f"two-{base}"}
    response = client.post("/api/v1/dead-letters/replay", body, content_type="application/json")
    assert response.status_code == 201, response.content
    assert execute(response.json()["operation"]["id"]) == "succeeded"
    records = {r.connection: r for r in ReplayRecord.objects.filter(dead_letter__in=letters.values())}
    assert {(k, r.broker, r.destination) for k, r in records.items()} == {
        ("default", "kafka", base),
        ("second", "kafka", base),
    }
    # Each went back to the origin topic of its own cluster, and only there.
    for name, adapter in adapters.items():
        got = wait_until(lambda adapter=adapter: adapter.read(base, 10, timeout=2), 20)
        assert [m.body for m in got] == [f'{{"from": "{name}"}}'.encode()]

    # A destination naming the other connection sends there.
    page = world.client(world.viewer).get(f"/dead-letters/{letters['default'].pk}/")
    assert b"kafka:default/" in page.content


def test_it_reports_lag_per_cluster(world, two_clusters):
    base = f"sy-{uuid.uuid4().hex[:10]}"
    adapters = _topics(two_clusters, base)
    group = f"grp-{base}"
    sent = {"default": 3, "second": 5}
    for name, adapter in adapters.items():
        for i in range(sent[name]):
            adapter.publish(base, f"m{i}".encode())  # one at a time: tansu's watermark is wrong after a batch
        with adapter.subscribe(base, group, **{"session.timeout.ms": 6000}) as sub:
            got = wait_until(lambda sub=sub: sub.poll(1, timeout=1), 30)
            sub.ack(got[:1])
    sample_all()
    lags = {t.connection: t.lag for t in ConsumerTarget.objects.filter(broker="kafka", name=group)}
    assert lags == {"default": 2, "second": 4}
    viewer = world.client(world.viewer)
    assert viewer.get(f"/api/v1/consumers/kafka:second/{group}").json()["lag"] == 4
    assert viewer.get(f"/api/v1/consumers/kafka/{group}").json()["lag"] == 2  # a kind alone: its default
    assert viewer.get(f"/consumers/kafka:second/{group}/").status_code == 200
    listed = viewer.get("/api/v1/consumers", {"broker": "kafka:second"}).json()["consumers"]
    assert {(c["connection"], c["name"]) for c in listed if c["name"] == group} == {("kafka:second", group)}
    metrics = viewer.get("/metrics").content.decode()
    assert f'switchyard_consumer_lag{{broker="kafka",connection="second",kind="group",name="{group}"}} 4.0' in metrics


def test_it_lists_every_connection_with_its_own_health(world, two_clusters, settings):
    settings.BROKERS = {
        **settings.BROKERS,
        "kafka": {**settings.BROKERS["kafka"], "gone": KafkaConnection(bootstrap_servers="127.0.0.1:9")},
    }
    brokers.reset()
    rows = {r["connection"]: r for r in world.client(world.viewer).get("/api/v1/brokers").json()["brokers"]}
    assert rows["kafka:default"]["reachable"] and rows["kafka:second"]["reachable"]
    assert rows["kafka:gone"]["reachable"] is False and rows["kafka:gone"]["reason"]
    assert rows["kafka:second"]["address"] == settings.BROKERS["kafka"]["second"].bootstrap_servers[0]
    page = world.client(world.viewer).get("/brokers/").content.decode()
    assert 'data-testid="broker-kafka:default"' in page and 'data-testid="broker-kafka:gone"' in page
    tested = world.client(world.viewer).get("/brokers/kafka:second/test", HTTP_HX_REQUEST="true")
    assert tested.status_code == 200 and "tested just now" in tested.content.decode()
    assert world.client(world.viewer).get("/api/v1/brokers/kafka:nope").status_code == 404
    health = world.client(None).get("/healthz").json()
    assert health["checks"]["kafka:default"]["ok"] is True and health["checks"]["kafka:gone"]["ok"] is False
