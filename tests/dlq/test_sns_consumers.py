"""SNS topics and their subscriptions on the consumers page (moto): each subscription with its dead-letter queue's
depth and age, each topic with its subscriptions."""

import pytest

from monitoring import sampler
from monitoring.models import ConsumerTarget, Sample
from tests.dlq.sns_world import sns_world

sns = pytest.fixture(sns_world)


def test_it_shows_topics_and_subscriptions_with_their_dlq_depth_and_age(world, sns):
    topic = sns.topic()
    failing = sns.subscribe(topic)
    quiet = sns.subscribe(topic, raw=True)
    for n in range(2):
        sns.adapter.publish(f"sns:{topic}", f'{{"n": {n}}}'.encode())
    sns.fail_delivery(failing, expected=2)

    result = sampler.sample_all()
    assert "sqs:default" not in result["errors"], result["errors"]

    row = ConsumerTarget.objects.get(broker="sqs", connection="default", name=failing.subscription.destination)
    assert row.kind == ConsumerTarget.Kind.SUBSCRIPTION
    assert row.lag == 2
    assert row.lag_seconds is not None and row.lag_seconds >= 0
    assert row.details["dead_letter_queue"] == failing.dlq and row.details["topic"] == topic
    sample = Sample.objects.filter(target=row).latest("time")
    assert sample.depth == 2 and sample.oldest_age_seconds is not None

    calm = ConsumerTarget.objects.get(broker="sqs", connection="default", name=quiet.subscription.destination)
    assert calm.lag == 0 and calm.details["raw"] is True

    topic_row = ConsumerTarget.objects.get(broker="sqs", connection="default", name=f"sns:{topic}")
    assert topic_row.kind == ConsumerTarget.Kind.TOPIC
    assert topic_row.members == 2 and topic_row.lag == 2
    assert topic_row.status == "OK" and "2 subscription(s), 2 with a dead-letter queue" in topic_row.reason

    page = world.client(world.viewer).get(f"/consumers/?q={topic}").content.decode()
    assert f'data-name="sns:{topic}"' in page
    assert f'data-name="{failing.subscription.destination}"' in page
    assert failing.dlq in page and "2 subscriptions, 2 with a dead-letter queue" in page
    api = world.client(world.viewer).get("/api/v1/consumers").json()
    listed = {c["name"]: c for c in api.get("consumers", api.get("targets", []))}
    assert listed[failing.subscription.destination]["subscription"] == failing.subscription.destination
    detail = world.client(world.viewer).get(row.get_absolute_url())
    assert detail.status_code == 200 and failing.subscription.destination in detail.content.decode()
