"""Kafka SASL/OAUTHBEARER: OIDC client credentials (librdkafka's own token fetch) and AWS MSK IAM (a SigV4 token
made by aws-msk-iam-sasl-signer-python in the adapter's oauth_cb).

What is real here and what is not: the token endpoint is a real OAuth 2.0 server (authlib) and librdkafka really
fetches, refreshes and sends the token; moto's STS really issues the role credentials the MSK token is signed with.
But no broker here validates either token: noida-db accepts any SASL mechanism and any credentials, and tansu offers
only SCRAM. So "the broker accepted the token" is noida's indifference, not MSK's or a JWKS check; a signature that
MSK would reject is not caught by these tests.
"""

import base64
import logging
import time
import urllib.parse
import uuid

import pytest

from brokers.kafka import KafkaAdapter


def _oidc(endpoint, secret=None) -> dict:
    return {
        "mechanism": "OAUTHBEARER",
        "token_endpoint_url": endpoint.url,
        "client_id": endpoint.client_id,
        "client_secret": secret or endpoint.client_secret,
        "scope": "kafka",
        "extensions": {"logicalCluster": "lkc-eu"},
    }


def test_it_fetches_an_oidc_token_with_client_credentials_and_uses_it(
    token_endpoint, noida_bootstrap, new_destination, caplog
):
    caplog.set_level(logging.DEBUG, logger="brokers")
    sasl = _oidc(token_endpoint)
    with KafkaAdapter(noida_bootstrap, security_protocol="SASL_PLAINTEXT", sasl=sasl) as adapter:
        health = adapter.health()
        assert health.reachable, health.error
        topic = new_destination(adapter)
        adapter.publish(topic, b"with a token")
        assert [m.body for m in adapter.read(topic, timeout=5)] == [b"with a token"]
        assert token_endpoint.client_secret not in repr(adapter)
    assert {"client_id": "switchyard-kafka", "grant_type": "client_credentials", "scope": "kafka"} in (
        token_endpoint.requests
    )
    assert token_endpoint.client_secret not in caplog.text


def test_it_says_a_refused_client_secret_is_refused_and_never_shows_it(token_endpoint, noida_bootstrap, caplog):
    caplog.set_level(logging.DEBUG, logger="brokers")
    wrong = "wrong-" + uuid.uuid4().hex
    sasl = _oidc(token_endpoint, secret=wrong)
    with KafkaAdapter(noida_bootstrap, security_protocol="SASL_PLAINTEXT", sasl=sasl) as adapter:
        started = time.monotonic()
        health = adapter.health()
        assert time.monotonic() - started <= 6
        assert (health.reachable, health.reason) == (False, "authentication refused"), health.error
        assert "OAUTHBEARER" in health.error
        assert wrong not in health.error and wrong not in repr(adapter)
    assert "invalid_client" in caplog.text  # librdkafka's OIDC log line reached the adapter's logger
    assert wrong not in caplog.text


def _signed_url(token: str) -> urllib.parse.ParseResult:
    return urllib.parse.urlparse(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())


def _msk_adapter(bootstrap: str, **sasl) -> KafkaAdapter:
    return KafkaAdapter(
        bootstrap, security_protocol="SASL_PLAINTEXT", sasl={"mechanism": "AWS_MSK_IAM", "region": "eu-west-1", **sasl}
    )


def test_it_signs_an_msk_iam_token_with_the_default_credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIASWITCHYARDTEST01")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "msk-secret-" + uuid.uuid4().hex)
    adapter = _msk_adapter("b-1.msk.example:9098")
    config = adapter._client_config(exclude=set())
    assert config["sasl.mechanism"] == "OAUTHBEARER"  # MSK IAM is OAUTHBEARER on the wire

    token, expiry = config["oauth_cb"]("")

    url = _signed_url(token)
    query = urllib.parse.parse_qs(url.query)
    assert url.netloc == "kafka.eu-west-1.amazonaws.com"
    assert query["Action"] == ["kafka-cluster:Connect"]
    assert query["X-Amz-Credential"][0].startswith("AKIASWITCHYARDTEST01/")
    assert "/eu-west-1/kafka-cluster/aws4_request" in query["X-Amz-Credential"][0]
    assert 0 < expiry - time.time() <= 900  # seconds since the epoch, as librdkafka wants; 15 minutes at most


def test_it_signs_an_msk_iam_token_as_an_assumed_role(moto_eu, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIASOURCE0000000001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "source-secret")
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_eu.url)  # botocore sends STS calls to moto
    adapter = _msk_adapter("b-1.msk.example:9098", role_arn="arn:aws:iam::111122223333:role/msk-reader")

    token, _ = adapter._client_config(exclude=set())["oauth_cb"]("")

    query = urllib.parse.parse_qs(_signed_url(token).query)
    assert query["X-Amz-Credential"][0].startswith("ASIA")  # STS temporary credentials, not the source key
    assert query["X-Amz-Security-Token"]


def test_it_signs_an_msk_iam_token_from_a_profile(tmp_path, monkeypatch):
    (tmp_path / "credentials").write_text(
        "[msk]\naws_access_key_id = AKIAPROFILE000000001\naws_secret_access_key = s\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    adapter = _msk_adapter("b-1.msk.example:9098", profile="msk")

    token, _ = adapter._client_config(exclude=set())["oauth_cb"]("")

    assert urllib.parse.parse_qs(_signed_url(token).query)["X-Amz-Credential"][0].startswith("AKIAPROFILE000000001/")


def test_it_hands_the_msk_iam_token_to_librdkafka(noida_bootstrap, monkeypatch):
    """librdkafka calls the adapter's oauth_cb and authenticates with OAUTHBEARER (noida takes any token)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIASWITCHYARDTEST01")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "msk-secret")
    adapter = _msk_adapter(noida_bootstrap)
    made = []
    callback = adapter._config["oauth_cb"]
    adapter._config["oauth_cb"] = lambda config: made.append(callback(config)) or made[-1]
    with adapter:
        health = adapter.health()
        assert health.reachable, health.error
    assert made and made[0][0]


@pytest.mark.parametrize("missing", ["region"])
def test_it_names_what_msk_iam_lacks(missing):
    from brokers.base import BrokerConfigError

    with pytest.raises(BrokerConfigError, match=rf"sasl\.{missing}"):
        KafkaAdapter("b:9098", security_protocol="SASL_SSL", sasl={"mechanism": "AWS_MSK_IAM"})
