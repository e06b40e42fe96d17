"""The SQS adapter in several accounts and regions at once, with credentials from keys, a profile, or an assumed
role, against moto servers (one of them checking credentials, tools/secure_services.start_moto_with_iam)."""

import logging
import time
import uuid
from datetime import UTC, datetime

import pytest

from brokers.base import BrokerConfigError
from brokers.sqs import SqsAdapter

ROLE_ACCOUNT = "111122223333"


@pytest.fixture
def queue_name():
    return f"sy-{uuid.uuid4().hex[:10]}"


def test_it_keeps_two_accounts_in_two_regions_apart(moto_eu, moto_iam, queue_name):
    eu = SqsAdapter(endpoint_url=moto_eu.url, region="eu-west-1", access_key_id="eu-key", secret_access_key="eu-s")
    us = SqsAdapter(
        endpoint_url=moto_iam.url,
        region="us-west-2",
        access_key_id=moto_iam.access_key_id,
        secret_access_key=moto_iam.secret_access_key,
    )
    with eu, us:
        eu.ensure_destination(queue_name + "-eu")
        us.ensure_destination(queue_name + "-us")
        eu.publish(queue_name + "-eu", b"for europe")
        us.publish(queue_name + "-us", b"for the us")

        assert eu.health().reachable and us.health().reachable
        assert queue_name + "-us" not in {d.name for d in eu.list_destinations()}
        assert queue_name + "-eu" not in {d.name for d in us.list_destinations()}
        assert [m.body for m in eu.read(queue_name + "-eu", timeout=2)] == [b"for europe"]
        assert [m.body for m in us.read(queue_name + "-us", timeout=2)] == [b"for the us"]
        assert "eu-west-1" in eu.queue_attributes(queue_name + "-eu")["QueueArn"]
        assert "us-west-2" in us.queue_attributes(queue_name + "-us")["QueueArn"]
        eu.delete_destination(queue_name + "-eu")
        us.delete_destination(queue_name + "-us")


def test_it_works_as_an_assumed_role_and_renews_it(moto_eu, queue_name):
    """moto files what the role's temporary credentials do under the role's account: the queue URL shows whose
    credentials made the call."""
    role = f"arn:aws:iam::{ROLE_ACCOUNT}:role/switchyard"
    with SqsAdapter(
        endpoint_url=moto_eu.url,
        region="eu-west-1",
        access_key_id="source-key",
        secret_access_key="source-secret",
        role_arn=role,
        external_id="sy-external",
    ) as adapter:
        adapter.ensure_destination(queue_name)
        assert f"/{ROLE_ACCOUNT}/{queue_name}" in adapter._queue_url(queue_name)
        assert adapter.health().reachable
        credentials = adapter._client._request_signer._credentials
        assert credentials.get_frozen_credentials().access_key.startswith("ASIA")  # STS's, not the source key
        # botocore renews refreshable credentials once they are within minutes of expiring; pretend they are.
        credentials._expiry_time = credentials._expiry_time.replace(year=2000)
        adapter.publish(queue_name, b"after the renewal")
        assert credentials._expiry_time > datetime.now(UTC)  # assumed again, with a new expiry from STS
        assert [m.body for m in adapter.read(queue_name, timeout=2)] == [b"after the renewal"]
        adapter.delete_destination(queue_name)
    with SqsAdapter(endpoint_url=moto_eu.url, region="eu-west-1", access_key_id="source-key",
                    secret_access_key="source-secret") as source:  # fmt: skip
        assert queue_name not in {d.name for d in source.list_destinations()}


def test_it_takes_credentials_from_a_named_profile(moto_iam, tmp_path, monkeypatch, queue_name):
    (tmp_path / "config").write_text("[profile billing]\nregion = us-west-2\n")
    (tmp_path / "credentials").write_text(
        f"[billing]\naws_access_key_id = {moto_iam.access_key_id}\n"
        f"aws_secret_access_key = {moto_iam.secret_access_key}\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "not-a-user-of-this-account")  # the default chain would find these
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "nope")

    with SqsAdapter(endpoint_url=moto_iam.url, region="us-west-2", profile="billing") as adapter:
        health = adapter.health()
        assert health.reachable, health.error
        adapter.ensure_destination(queue_name)
        adapter.delete_destination(queue_name)
    with SqsAdapter(endpoint_url=moto_iam.url, region="us-west-2") as default_chain:
        assert default_chain.health().reason == "authentication refused"
    with pytest.raises(BrokerConfigError, match="profile"):
        SqsAdapter(endpoint_url=moto_iam.url, profile="no-such-profile")


def test_it_says_wrong_credentials_are_refused_and_never_shows_the_secret(moto_iam, caplog):
    caplog.set_level(logging.DEBUG, logger="brokers")
    wrong = "wrong-" + uuid.uuid4().hex
    with SqsAdapter(
        endpoint_url=moto_iam.url, region="us-west-2", access_key_id=moto_iam.access_key_id, secret_access_key=wrong
    ) as adapter:
        started = time.monotonic()
        health = adapter.health()
        assert time.monotonic() - started <= 6
        assert (health.reachable, health.reason) == (False, "authentication refused"), health.error
        assert wrong not in health.error and wrong not in repr(adapter)
    assert wrong not in caplog.text


def test_it_refuses_half_a_key_pair():
    with pytest.raises(BrokerConfigError, match="access_key_id and secret_access_key"):
        SqsAdapter(access_key_id="AKIA...")
