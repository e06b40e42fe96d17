"""The NATS adapter with TLS, mutual TLS, and each way NATS authenticates (password, token, nkey, creds file),
against nats-server processes the tests start (tools/secure_services.py), and the reasons its health check gives."""

import logging
import time
import uuid

import pytest

from brokers.base import BrokerConfigError, BrokerError
from brokers.nats import NatsAdapter
from tests.brokers.conftest import NATS_DOMAIN


def _round_trip(adapter: NatsAdapter, new_destination) -> None:
    stream = new_destination(adapter)
    adapter.publish(stream, b"secured", key="k1", headers={"h": "v"})
    [read] = adapter.read(stream, timeout=5)
    assert (read.body, read.key, read.headers) == (b"secured", b"k1", {"h": b"v"})
    with adapter.subscribe(stream, f"g-{uuid.uuid4().hex[:8]}") as sub:
        got, deadline = [], time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            got = sub.poll(10, 0.5)
        assert [m.body for m in got] == [b"secured"]
        sub.ack(got)


def _assert_quick_failure(adapter: NatsAdapter, reason: str, *secrets: str):
    started = time.monotonic()
    health = adapter.health()
    assert time.monotonic() - started <= 6
    assert (health.reachable, health.reason) == (False, reason), health.error
    for secret in secrets:
        assert secret not in health.error
        assert secret not in repr(adapter)
    return health


def test_it_round_trips_as_a_password_user_over_tls_in_a_jetstream_domain(nats_tls, certs, nats_users, new_destination):
    users, _ = nats_users
    with NatsAdapter(
        [nats_tls.url],
        user=users.password_user,
        password=users.password,
        tls={"ca_file": str(certs.ca)},
        jetstream_domain=NATS_DOMAIN,
    ) as adapter:
        health = adapter.health()
        assert health.reachable, health.error
        assert health.version.count(".") == 2
        _round_trip(adapter, new_destination)
        assert users.password not in repr(adapter)


def test_it_sends_jetstream_calls_to_the_domain_it_was_given(nats_tls, certs, nats_users):
    users, _ = nats_users
    auth = {"user": users.password_user, "password": users.password, "tls": {"ca_file": str(certs.ca)}}
    with NatsAdapter(nats_tls.url, jetstream_domain="no-such-domain", **auth) as elsewhere:
        with pytest.raises(BrokerError):  # nobody answers $JS.no-such-domain.API.>
            elsewhere.list_destinations()


def test_it_round_trips_with_a_token(nats_token, certs, nats_users, new_destination):
    users, _ = nats_users
    with NatsAdapter(nats_token.url, token=users.token, tls={"ca_file": str(certs.ca)}) as adapter:
        assert adapter.health().reachable
        _round_trip(adapter, new_destination)
        assert users.token not in repr(adapter)


def test_it_round_trips_as_an_nkey_user(nats_tls, certs, nats_users, new_destination):
    users, _ = nats_users
    tls = {"ca_file": str(certs.ca)}
    with NatsAdapter(nats_tls.url, nkey_seed_file=str(users.nkey_seed_file), tls=tls) as adapter:
        assert adapter.health().reachable
        _round_trip(adapter, new_destination)
        assert users.nkey_seed_file.read_text().strip() not in repr(adapter)


def test_it_round_trips_with_a_creds_file(nats_operator, certs, nats_users, new_destination):
    users, _ = nats_users
    with NatsAdapter(nats_operator.url, creds_file=str(users.creds_file), tls={"ca_file": str(certs.ca)}) as adapter:
        assert adapter.health().reachable
        _round_trip(adapter, new_destination)


def test_it_round_trips_with_a_client_certificate(nats_mtls, certs, new_destination):
    tls = {"ca_file": str(certs.ca), "cert_file": str(certs.client_cert), "key_file": str(certs.client_key)}
    with NatsAdapter(nats_mtls.url, tls=tls) as adapter:
        assert adapter.health().reachable
        _round_trip(adapter, new_destination)


def test_it_says_a_wrong_password_is_refused_and_never_shows_it(nats_tls, certs, nats_users, caplog):
    caplog.set_level(logging.DEBUG)
    users, _ = nats_users
    wrong = "wrong-" + uuid.uuid4().hex
    tls = {"ca_file": str(certs.ca)}
    with NatsAdapter(nats_tls.url, user=users.password_user, password=wrong, tls=tls) as adapter:
        _assert_quick_failure(adapter, "authentication refused", wrong)
        with pytest.raises(BrokerError) as raised:
            adapter.list_destinations()
        assert wrong not in str(raised.value)
    assert wrong not in caplog.text


def test_it_says_a_password_in_the_url_is_refused_and_never_shows_it(nats_tls, certs):
    wrong = "in-url-" + uuid.uuid4().hex
    url = nats_tls.url.replace("tls://", f"tls://switchyard:{wrong}@")
    with NatsAdapter(url, tls={"ca_file": str(certs.ca)}) as adapter:
        _assert_quick_failure(adapter, "authentication refused", wrong)
        assert adapter.url == nats_tls.url


def test_it_says_creds_of_an_unknown_operator_are_refused(nats_operator, certs, nats_users):
    users, _ = nats_users
    tls = {"ca_file": str(certs.ca)}
    with NatsAdapter(nats_operator.url, creds_file=str(users.other_creds_file), tls=tls) as adapter:
        _assert_quick_failure(adapter, "authentication refused")


def test_it_says_the_server_certificate_is_not_trusted(nats_token, certs, nats_users):
    users, _ = nats_users
    with NatsAdapter(nats_token.url, token=users.token, tls={"ca_file": str(certs.other_ca)}) as adapter:
        _assert_quick_failure(adapter, "certificate not trusted", users.token)


def test_it_says_the_server_refused_a_missing_client_certificate(nats_mtls, certs):
    with NatsAdapter(nats_mtls.url, tls={"ca_file": str(certs.ca)}) as adapter:
        _assert_quick_failure(adapter, "certificate rejected (client certificate)")


def test_it_takes_a_server_list_or_the_old_url_argument(nats_token, certs, nats_users):
    users, _ = nats_users
    auth = {"token": users.token, "tls": {"ca_file": str(certs.ca)}}
    closed = "tls://localhost:9"
    for adapter in (
        NatsAdapter(f"{nats_token.url}, {closed}", **auth),
        NatsAdapter([nats_token.url], **auth),
        NatsAdapter(url=nats_token.url, **auth),
    ):
        with adapter:
            assert adapter.health().reachable, adapter.health().error


def test_it_refuses_settings_that_cannot_work(tmp_path, nats_users):
    users, _ = nats_users
    with pytest.raises(BrokerConfigError, match="creds_file"):
        NatsAdapter("nats://n:4222", creds_file=str(tmp_path / "missing.creds"))
    with pytest.raises(BrokerConfigError, match="one way to authenticate"):
        NatsAdapter("nats://n:4222", token="t", creds_file=str(users.creds_file))
    with pytest.raises(BrokerConfigError, match="nkey_seed_file"):
        NatsAdapter("nats://n:4222", nkey_seed_file=str(users.creds_file))
    with pytest.raises(BrokerConfigError, match="servers"):
        NatsAdapter([])
