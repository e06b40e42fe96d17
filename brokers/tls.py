"""TLS settings shared by the adapters: one `tls` mapping per connection, checked when the adapter is made.

    tls: {ca_file, cert_file, key_file, key_password, verify_hostname (default true), ca_pem, cert_pem, key_pem}

Files are PEM. Kafka hands them to librdkafka as paths (or inline PEM); RabbitMQ, NATS and the RabbitMQ management API
get an ssl.SSLContext built here. A file that is missing or unreadable, or that is not what its key says, fails at
construction with a message naming the key, so a bad connection is reported at start-up and not at the first call.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from typing import Any

from brokers.base import BrokerConfigError

FILE_KEYS = ("ca_file", "cert_file", "key_file")
PEM_KEYS = ("ca_pem", "cert_pem", "key_pem")
KNOWN_KEYS = {*FILE_KEYS, *PEM_KEYS, "key_password", "verify_hostname"}


def check_tls(tls: Mapping[str, Any] | None, what: str = "tls") -> dict[str, Any]:
    """The tls mapping with files checked readable and paths expanded; {} for None. BrokerConfigError names the key."""
    if not tls:
        return {}
    if not isinstance(tls, Mapping):
        raise BrokerConfigError(f"{what} must be a mapping of {', '.join(sorted(KNOWN_KEYS))}")
    unknown = sorted(set(tls) - KNOWN_KEYS)
    if unknown:
        raise BrokerConfigError(f"{what}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(KNOWN_KEYS))}")
    checked = {key: value for key, value in tls.items() if value is not None}
    for key in FILE_KEYS:
        if key in checked:
            checked[key] = readable_file(checked[key], f"{what}.{key}")
    for key in PEM_KEYS:
        if key in checked and "-----BEGIN" not in str(checked[key]):
            raise BrokerConfigError(f"{what}.{key}: not PEM text (no -----BEGIN line)")
    if ("cert_file" in checked or "cert_pem" in checked) != ("key_file" in checked or "key_pem" in checked):
        raise BrokerConfigError(f"{what}: a client certificate needs both cert_file (or cert_pem) and key_file")
    checked["verify_hostname"] = _boolean(checked.get("verify_hostname", True), f"{what}.verify_hostname")
    return checked


def readable_file(path: Any, key: str) -> str:
    """`path` expanded, after checking it can be read; BrokerConfigError naming `key` otherwise."""
    expanded = os.path.expanduser(str(path))
    try:
        with open(expanded, "rb") as f:
            f.read(1)
    except OSError as exc:
        raise BrokerConfigError(f"{key}: cannot read {expanded!r} ({exc.strerror or exc})") from None
    return expanded


def ssl_context(tls: Mapping[str, Any], what: str = "tls") -> ssl.SSLContext:
    """A client SSLContext from a check_tls() mapping: the system CAs unless ca_file / ca_pem name others, the client
    certificate for mutual TLS, and hostname checking unless verify_hostname is false."""
    context = ssl.create_default_context(cafile=None)
    if tls.get("ca_file") or tls.get("ca_pem"):
        # Only the configured CA: a private broker's CA replaces the system store instead of widening it.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            context.load_verify_locations(cafile=tls.get("ca_file"), cadata=tls.get("ca_pem"))
        except (ssl.SSLError, ValueError) as exc:
            key = "ca_file" if tls.get("ca_file") else "ca_pem"
            raise BrokerConfigError(f"{what}.{key}: not a usable CA certificate ({exc})") from None
    if tls.get("cert_pem") or tls.get("key_pem"):
        raise BrokerConfigError(f"{what}: cert_pem and key_pem are for Kafka only; give cert_file and key_file")
    if tls.get("cert_file"):
        try:
            context.load_cert_chain(tls["cert_file"], tls.get("key_file"), password=tls.get("key_password"))
        except (ssl.SSLError, ValueError) as exc:
            # Not exc's text alone: it never holds the password, but say which files were meant.
            raise BrokerConfigError(
                f"{what}.cert_file / {what}.key_file: the certificate and key cannot be used together, or the key "
                f"password is wrong ({type(exc).__name__}: {getattr(exc, 'reason', None) or exc})"
            ) from None
    context.check_hostname = bool(tls.get("verify_hostname", True))
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def _boolean(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
        return value.strip().lower() in ("true", "yes", "on", "1")
    raise BrokerConfigError(f"{key}: expected true or false, got {value!r}")
