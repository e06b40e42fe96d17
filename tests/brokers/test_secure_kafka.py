"""The Kafka adapter over TLS, mutual TLS and SASL, against tansu behind a TLS terminator and noida-db (see
tools/secure_services.py for what each broker can and cannot do), and the reasons its health check gives."""

import logging
import time
import uuid

import pytest

from brokers.base import BrokerConfigError
from brokers.kafka import KafkaAdapter
from tools.secure_services import KEY_PASSWORD
from tools.services import free_port

SECRET = "pw-" + uuid.uuid4().hex  # a password that must never be shown
TANSU_GROUPS = {"session.timeout.ms": 6000}  # tansu completes a group join after session.timeout.ms / 2


def _round_trip(adapter: KafkaAdapter, new_destination) -> None:
    topic = new_destination(adapter)
    adapter.publish(topic, b"through the tunnel", key="k1", headers={"h": "v"})
    [read] = adapter.read(topic, timeout=10)
    assert (read.body, read.key, read.headers) == (b"through the tunnel", b"k1", {"h": b"v"})
    with adapter.subscribe(topic, f"g-{uuid.uuid4().hex[:8]}", **TANSU_GROUPS) as sub:
        got, deadline = [], time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            got = sub.poll(10, 1.0)
        assert [m.body for m in got] == [b"through the tunnel"]
        sub.ack(got)


def _assert_quick_failure(adapter: KafkaAdapter, reason: str, *secrets: str):
    started = time.monotonic()
    health = adapter.health()
    assert time.monotonic() - started <= 6
    assert (health.reachable, health.reason) == (False, reason), health.error
    for secret in secrets:
        assert secret not in health.error
        assert secret not in repr(adapter)
    return health


def test_it_round_trips_over_tls_checking_the_broker_against_the_ca(tansu_tls, certs, new_destination):
    with KafkaAdapter(tansu_tls.url, TANSU_GROUPS, security_protocol="SSL", tls={"ca_file": str(certs.ca)}) as adapter:
        health = adapter.health()
        assert health.reachable, health.error
        assert health.version.startswith("cluster ")
        _round_trip(adapter, new_destination)


def test_it_round_trips_with_a_client_certificate_and_an_encrypted_key(tansu_mtls, certs, new_destination, caplog):
    caplog.set_level(logging.DEBUG, logger="brokers")
    tls = {
        "ca_file": str(certs.ca),
        "cert_file": str(certs.client_cert),
        "key_file": str(certs.client_key_encrypted),
        "key_password": KEY_PASSWORD,
    }
    with KafkaAdapter(tansu_mtls.url, TANSU_GROUPS, security_protocol="SSL", tls=tls) as adapter:
        assert adapter.health().reachable
        _round_trip(adapter, new_destination)
        assert KEY_PASSWORD not in repr(adapter)
    assert KEY_PASSWORD not in caplog.text


def test_it_round_trips_with_sasl_plain(noida_bootstrap, new_destination):
    """noida-db takes any PLAIN user and password: this shows the client side of SASL_PLAINTEXT PLAIN working end
    to end, not a password being checked (tansu, which checks, cannot take PLAIN)."""
    sasl = {"mechanism": "PLAIN", "username": "switchyard", "password": SECRET}
    with KafkaAdapter(noida_bootstrap, security_protocol="SASL_PLAINTEXT", sasl=sasl) as adapter:
        assert adapter.health().reachable
        topic = new_destination(adapter)
        adapter.publish(topic, b"signed in")
        assert [m.body for m in adapter.read(topic, timeout=5)] == [b"signed in"]
        assert SECRET not in repr(adapter)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "SCRAM-SHA-256"])
def test_it_says_a_refused_scram_login_is_refused_and_never_shows_the_password(
    mechanism, tansu_sasl_ssl, certs, caplog
):
    caplog.set_level(logging.DEBUG, logger="brokers")
    sasl = {"mechanism": mechanism, "username": "switchyard", "password": SECRET}
    adapter = KafkaAdapter(tansu_sasl_ssl.url, security_protocol="SASL_SSL", sasl=sasl, tls={"ca_file": str(certs.ca)})
    try:
        health = _assert_quick_failure(adapter, "authentication refused", SECRET)
        assert "SCRAM" in health.error  # the SCRAM exchange itself ran over TLS and was refused
        with pytest.raises(Exception) as raised:  # noqa: PT011 - whatever a call raises must not show it either
            adapter.list_destinations()
        assert SECRET not in str(raised.value)
    finally:
        adapter.close()
    assert "SASL" in caplog.text  # librdkafka's own log lines reached the adapter's logger ...
    assert SECRET not in caplog.text  # ... without the password


def test_it_says_the_broker_certificate_is_not_trusted(tansu_tls, certs):
    with KafkaAdapter(tansu_tls.url, security_protocol="SSL", tls={"ca_file": str(certs.other_ca)}) as adapter:
        _assert_quick_failure(adapter, "certificate not trusted")


def test_it_says_the_broker_refused_a_missing_client_certificate(tansu_mtls, certs):
    with KafkaAdapter(tansu_mtls.url, security_protocol="SSL", tls={"ca_file": str(certs.ca)}) as adapter:
        _assert_quick_failure(adapter, "certificate rejected (client certificate)")


def test_it_says_the_host_is_unknown():
    with KafkaAdapter("no-such-broker.invalid:9093", security_protocol="SSL") as adapter:
        _assert_quick_failure(adapter, "host unknown")


def test_it_says_the_connection_was_refused():
    with KafkaAdapter(f"127.0.0.1:{free_port()}") as adapter:
        _assert_quick_failure(adapter, "connection refused")


def test_it_names_the_key_of_a_missing_or_unreadable_file(tmp_path, certs):
    with pytest.raises(BrokerConfigError, match=r"tls\.ca_file: cannot read .*nope\.pem"):
        KafkaAdapter("localhost:9093", security_protocol="SSL", tls={"ca_file": str(tmp_path / "nope.pem")})
    unreadable = tmp_path / "dir.pem"
    unreadable.mkdir()
    with pytest.raises(BrokerConfigError, match=r"tls\.key_file"):
        KafkaAdapter(
            "localhost:9093",
            security_protocol="SSL",
            tls={"cert_file": str(certs.client_cert), "key_file": str(unreadable)},  # root reads any file: a dir
        )


def test_it_refuses_settings_that_cannot_work_and_names_the_key():
    with pytest.raises(BrokerConfigError, match=r"sasl\.password"):
        KafkaAdapter("b:9093", security_protocol="SASL_SSL", sasl={"mechanism": "SCRAM-SHA-512", "username": "u"})
    with pytest.raises(BrokerConfigError, match="security_protocol is PLAINTEXT"):
        KafkaAdapter("b:9093", sasl={"mechanism": "PLAIN", "username": "u", "password": SECRET})
    with pytest.raises(BrokerConfigError, match="sasl.mechanism") as raised:
        KafkaAdapter("b:9093", security_protocol="SASL_SSL", sasl={"mechanism": "GSSAPI", "password": SECRET})
    assert SECRET not in str(raised.value)
    with pytest.raises(BrokerConfigError, match=r"sasl\.region"):
        KafkaAdapter("b:9098", security_protocol="SASL_SSL", sasl={"mechanism": "AWS_MSK_IAM"})


def test_it_passes_properties_through_over_what_it_derived():
    adapter = KafkaAdapter(
        "b:9093",
        security_protocol="SSL",
        tls={"verify_hostname": False},
        properties={"client.id": "switchyard-eu", "ssl.endpoint.identification.algorithm": "https"},
    )
    config = adapter._client_config(exclude=set())
    assert config["client.id"] == "switchyard-eu"
    assert config["ssl.endpoint.identification.algorithm"] == "https"
    assert config["security.protocol"] == "SSL"
