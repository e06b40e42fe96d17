"""librdkafka settings for a Kafka connection's security: protocol, SASL mechanism and TLS, checked at construction.

    security_protocol: PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    sasl: {mechanism: PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512, username, password}
          {mechanism: OAUTHBEARER, token_endpoint_url, client_id, client_secret, scope?, extensions?}
          {mechanism: AWS_MSK_IAM, region, profile?, role_arn?, role_session_name?}
    tls:  {ca_file, cert_file, key_file, key_password, verify_hostname, ca_pem, cert_pem, key_pem}  (brokers.tls)
    properties: any librdkafka property, applied last (it overrides what is derived here)

OAUTHBEARER uses librdkafka's own OIDC client-credentials flow (`sasl.oauthbearer.method=oidc`; the confluent-kafka
wheel's librdkafka is built with it: builtin.features lists "oidc"), which fetches and refreshes the token itself.
AWS_MSK_IAM is OAUTHBEARER on the wire with a token that is a SigV4-presigned URL: an `oauth_cb` makes it with
aws-msk-iam-sasl-signer-python from the credentials of brokers.aws (default chain, profile or assumed role), and
librdkafka calls it again before the token's 15 minutes run out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from brokers.base import BrokerConfigError, secrets_of
from brokers.tls import check_tls

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "AWS_MSK_IAM")
_SASL_KEYS = {
    "PLAIN": ({"username", "password"}, set()),
    "SCRAM-SHA-256": ({"username", "password"}, set()),
    "SCRAM-SHA-512": ({"username", "password"}, set()),
    "OAUTHBEARER": ({"token_endpoint_url", "client_id", "client_secret"}, {"scope", "extensions"}),
    "AWS_MSK_IAM": ({"region"}, {"profile", "role_arn", "role_session_name"}),
}
# librdkafka properties whose values are secrets: given through `properties`, they are redacted like the others.
SECRET_PROPERTIES = (
    "sasl.password",
    "sasl.oauthbearer.client.secret",
    "ssl.key.password",
    "ssl.key.pem",
    "ssl.keystore.password",
    "sasl.oauthbearer.config",
    "ssl_key",
)


@dataclass
class KafkaSecurity:
    config: dict[str, Any] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    oauth_cb: Callable[[str], tuple[str, float]] | None = None
    summary: str = "PLAINTEXT"  # what repr() shows: protocol and mechanism, never a credential


def kafka_security(
    security_protocol: str = "PLAINTEXT",
    sasl: Mapping[str, Any] | None = None,
    tls: Mapping[str, Any] | None = None,
    properties: Mapping[str, Any] | None = None,
) -> KafkaSecurity:
    protocol = str(security_protocol or "PLAINTEXT").strip().upper()
    if protocol not in PROTOCOLS:
        raise BrokerConfigError(f"security_protocol: {security_protocol!r} is not one of {', '.join(PROTOCOLS)}")
    config: dict[str, Any] = {"security.protocol": protocol}
    secrets: list[str] = []
    oauth_cb = None
    summary = protocol

    uses_sasl = protocol.startswith("SASL_")
    if sasl and not uses_sasl:
        raise BrokerConfigError(f"sasl is set but security_protocol is {protocol}: use SASL_SSL or SASL_PLAINTEXT")
    if uses_sasl and not sasl:
        raise BrokerConfigError(f"security_protocol {protocol} needs sasl: {{mechanism, ...}}")
    if sasl:
        if not isinstance(sasl, Mapping):
            raise BrokerConfigError("sasl must be a mapping with a mechanism")
        mechanism = str(sasl.get("mechanism") or "").strip().upper().replace("_", "-")
        mechanism = "AWS_MSK_IAM" if mechanism == "AWS-MSK-IAM" else mechanism
        if mechanism not in MECHANISMS:
            raise BrokerConfigError(f"sasl.mechanism: {sasl.get('mechanism')!r} is not one of {', '.join(MECHANISMS)}")
        required, optional = _SASL_KEYS[mechanism]
        missing = sorted(k for k in required if not sasl.get(k))
        if missing:
            raise BrokerConfigError(f"sasl ({mechanism}) needs {', '.join('sasl.' + k for k in missing)}")
        unknown = sorted(set(sasl) - required - optional - {"mechanism"})
        if unknown:
            raise BrokerConfigError(f"sasl ({mechanism}): unknown key(s) {', '.join('sasl.' + k for k in unknown)}")
        summary += f" {mechanism}"
        if mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
            config.update(
                {"sasl.mechanism": mechanism, "sasl.username": sasl["username"], "sasl.password": sasl["password"]}
            )
            secrets += secrets_of(sasl["password"])
        elif mechanism == "OAUTHBEARER":
            config.update(
                {
                    "sasl.mechanism": "OAUTHBEARER",
                    "sasl.oauthbearer.method": "oidc",
                    "sasl.oauthbearer.token.endpoint.url": sasl["token_endpoint_url"],
                    "sasl.oauthbearer.client.id": sasl["client_id"],
                    "sasl.oauthbearer.client.secret": sasl["client_secret"],
                }
            )
            if sasl.get("scope"):
                config["sasl.oauthbearer.scope"] = sasl["scope"]
            extensions = sasl.get("extensions")
            if extensions:
                if not isinstance(extensions, Mapping):
                    raise BrokerConfigError("sasl.extensions must be a mapping of name: value")
                config["sasl.oauthbearer.extensions"] = ",".join(f"{k}={v}" for k, v in extensions.items())
            secrets += secrets_of(sasl["client_secret"])
        else:
            oauth_cb = msk_iam_token_callback(
                sasl["region"], sasl.get("profile"), sasl.get("role_arn"), sasl.get("role_session_name")
            )
            config["sasl.mechanism"] = "OAUTHBEARER"

    checked = check_tls(tls)
    if checked and not protocol.endswith("SSL"):
        raise BrokerConfigError(f"tls is set but security_protocol is {protocol}: use SSL or SASL_SSL")
    librdkafka_names = {
        "ca_file": "ssl.ca.location",
        "cert_file": "ssl.certificate.location",
        "key_file": "ssl.key.location",
        "key_password": "ssl.key.password",
        "ca_pem": "ssl.ca.pem",
        "cert_pem": "ssl.certificate.pem",
        "key_pem": "ssl.key.pem",
    }
    for key, name in librdkafka_names.items():
        if checked.get(key):
            config[name] = checked[key]
    if protocol.endswith("SSL"):
        # librdkafka checks the broker's name against its certificate by default ("https"); "none" turns it off.
        config["ssl.endpoint.identification.algorithm"] = "https" if checked.get("verify_hostname", True) else "none"
    secrets += secrets_of(checked.get("key_password"), checked.get("key_pem"))

    for name, value in (properties or {}).items():
        config[name] = value
        if name in SECRET_PROPERTIES or "password" in name or "secret" in name:
            secrets += secrets_of(value)
    return KafkaSecurity(config, tuple(dict.fromkeys(secrets)), oauth_cb, summary)


def msk_iam_token_callback(
    region: str, profile: str | None, role_arn: str | None, role_session_name: str | None
) -> Callable[[str], tuple[str, float]]:
    """The oauth_cb for AWS_MSK_IAM: (token, expiry in seconds since the epoch), as confluent-kafka expects."""
    from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

    from brokers.aws import SessionCredentialProvider, aws_session

    session = aws_session(
        region, profile=profile, role_arn=role_arn, role_session_name=role_session_name or "switchyard"
    )
    provider = SessionCredentialProvider(session)

    def oauth_cb(_config: str) -> tuple[str, float]:
        token, expiry_ms = MSKAuthTokenProvider.generate_auth_token_from_credentials_provider(region, provider)
        return token, expiry_ms / 1000

    return oauth_cb
