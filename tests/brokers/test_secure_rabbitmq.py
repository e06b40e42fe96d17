"""The RabbitMQ adapter over amqps with a vhost from the URL, and the management API over https, against a node of
the tests' own (tools/secure_services.start_rabbitmq_tls); the reasons its health check gives."""

import logging
import time
import urllib.parse
import uuid

import pytest

from brokers.base import BrokerConfigError
from brokers.rabbitmq import RabbitMQAdapter
from tests.brokers.conftest import RABBITMQ_TLS_PASSWORD, RABBITMQ_TLS_USER


def _assert_quick_failure(adapter: RabbitMQAdapter, reason: str, *secrets: str):
    started = time.monotonic()
    health = adapter.health()
    assert time.monotonic() - started <= 6
    assert (health.reachable, health.reason) == (False, reason), health.error
    for secret in secrets:
        assert secret not in health.error
        assert secret not in repr(adapter)
    return health


def test_it_round_trips_over_amqps_in_the_vhost_of_the_url(rabbitmq_tls, certs, new_destination):
    tls = {"ca_file": str(certs.ca)}
    with RabbitMQAdapter(rabbitmq_tls.url, rabbitmq_tls.management_url, tls=tls) as adapter:
        health = adapter.health()
        assert health.reachable, health.error
        assert health.version.startswith("3.")
        queue = new_destination(adapter)
        adapter.publish(queue, b"encrypted", key="k1", headers={"h": "v"})
        [read] = adapter.read(queue, timeout=3)
        assert (read.body, read.key, read.headers) == (b"encrypted", b"k1", {"h": b"v"})
        with adapter.subscribe(queue, "any") as sub:
            got = sub.poll(10, 3)
            assert [m.body for m in got] == [b"encrypted"]
            sub.ack(got)
        # The management API (https, same CA) lists the queue in the vhost the URL named, and only there.
        assert queue in {d.name for d in adapter.list_destinations()}
        assert RABBITMQ_TLS_PASSWORD not in repr(adapter)
        assert urllib.parse.quote(RABBITMQ_TLS_PASSWORD, safe="") not in repr(adapter)


def test_it_reads_the_management_api_with_its_own_credentials(rabbitmq_tls, certs, new_destination):
    tls = {"ca_file": str(certs.ca)}
    with RabbitMQAdapter(rabbitmq_tls.url, tls=tls) as amqp_only:
        queue = new_destination(amqp_only)
    anonymous_amqp = rabbitmq_tls.url.replace(urllib.parse.quote(RABBITMQ_TLS_PASSWORD, safe=""), "not-the-password")
    with RabbitMQAdapter(
        anonymous_amqp,
        rabbitmq_tls.management_url,
        management_username=RABBITMQ_TLS_USER,
        management_password=RABBITMQ_TLS_PASSWORD,
        tls=tls,
    ) as adapter:
        assert queue in adapter.queue_arguments()  # over https with the management credentials, not the URL's
        assert any(b["destination"] == queue for b in adapter.bindings())
    with RabbitMQAdapter(
        rabbitmq_tls.url, rabbitmq_tls.management_url, management_password="wrong-" + uuid.uuid4().hex, tls=tls
    ) as refused:
        with pytest.raises(Exception) as raised:  # noqa: PT011
            refused.queue_arguments()
        assert getattr(raised.value, "reason", None) == "authentication refused"


def test_it_says_a_wrong_password_is_refused_and_never_shows_it(rabbitmq_tls, certs, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-" + uuid.uuid4().hex
    url = rabbitmq_tls.url.replace(urllib.parse.quote(RABBITMQ_TLS_PASSWORD, safe=""), wrong)
    with RabbitMQAdapter(url, tls={"ca_file": str(certs.ca)}) as adapter:
        _assert_quick_failure(adapter, "authentication refused", wrong)
        with pytest.raises(Exception) as raised:  # noqa: PT011
            adapter.ensure_destination("sy-never")
        assert wrong not in str(raised.value)
    assert wrong not in caplog.text


def test_it_says_the_server_certificate_is_not_trusted(rabbitmq_tls, certs):
    with RabbitMQAdapter(rabbitmq_tls.url, tls={"ca_file": str(certs.other_ca)}) as adapter:
        _assert_quick_failure(adapter, "certificate not trusted", RABBITMQ_TLS_PASSWORD)


def test_it_presents_a_client_certificate_with_an_encrypted_key(rabbitmq_tls, certs):
    """The node checks a client certificate when one is sent (verify_peer): ours, from the test CA, is accepted, one
    from another CA is refused."""
    from tools.secure_services import KEY_PASSWORD

    tls = {
        "ca_file": str(certs.ca),
        "cert_file": str(certs.client_cert),
        "key_file": str(certs.client_key_encrypted),
        "key_password": KEY_PASSWORD,
    }
    with RabbitMQAdapter(rabbitmq_tls.url, tls=tls) as adapter:
        assert adapter.health().reachable
    other = {
        "ca_file": str(certs.ca),
        "cert_file": str(certs.other_client_cert),
        "key_file": str(certs.other_client_key),
    }
    with RabbitMQAdapter(rabbitmq_tls.url, tls=other) as adapter:
        _assert_quick_failure(adapter, "certificate rejected (client certificate)")


def test_it_names_the_key_of_a_bad_setting(tmp_path, certs):
    with pytest.raises(BrokerConfigError, match=r"tls\.ca_file"):
        RabbitMQAdapter("amqps://u:p@h/", tls={"ca_file": str(tmp_path / "missing.pem")})
    with pytest.raises(BrokerConfigError, match="key password is wrong"):
        RabbitMQAdapter(
            "amqps://u:p@h/",
            tls={"cert_file": str(certs.client_cert), "key_file": str(certs.client_key_encrypted), "key_password": "x"},
        )
    with pytest.raises(BrokerConfigError, match="amqps"):
        RabbitMQAdapter("amqp://u:p@h/", tls={"ca_file": str(certs.ca)})
