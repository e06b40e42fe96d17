"""The connections file: every broker connection the console reaches, by kind and by a name the operator gives.

`SWITCHYARD_CONNECTIONS` names a YAML file whose top-level keys are the kinds; under each, connection name →
settings (README, "Connections"):

    kafka:
      prod-eu:
        bootstrap_servers: b1:9093,b2:9093
        security_protocol: SASL_SSL
        sasl: {mechanism: SCRAM-SHA-512, username: switchyard, password: "${KAFKA_EU_PASSWORD}"}
        tls: {ca_file: /etc/switchyard/eu-ca.pem}

Secrets come as "${VAR}" inside any string (substituted after YAML parsing, so no quoting of theirs can break the
file) or as `<secret>_file` (a mounted secret: `password_file: /run/secrets/kafka`). They are held as pydantic
`SecretStr`, whose repr and str are masked, so a spec that reaches a log line, an error or a page shows `**********`;
only `adapter_args()` hands the clear values to an adapter.

Validation is pydantic's, one connection at a time, so every error names the file, the connection and the key:
`connections.yaml: kafka.prod-eu.sasl.mechanism: Input should be 'PLAIN', ...`. Plain Python: no Django here (the
settings module turns ConnectionsError into ImproperlyConfigured).
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

KINDS = ("kafka", "sqs", "rabbitmq", "nats")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
DEFAULT = "default"
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Keys whose `<key>_file` variant is read from a file (a secret); other `*_file` keys (ca_file, creds_file, ...) are
# paths handed to the client as they are.
SECRET_KEYS = frozenset(
    {"password", "client_secret", "token", "key_password", "secret_access_key", "session_token", "url",
     "management_password", "bearer_token"}
)  # fmt: skip


class ConnectionsError(ValueError):
    """The connections file (or a legacy variable) cannot be used; the text names the file, connection and key."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _readable(value: str | None) -> str | None:
    if value is not None:
        path = Path(value)
        if not path.is_file():
            raise ValueError(f"{value} is not a file")
        if not os.access(path, os.R_OK):
            raise ValueError(f"{value} cannot be read")
    return value


class Tls(_Spec):
    """PEM files: a CA to trust (else the system's), and a client certificate and key for mutual TLS."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    key_password: SecretStr | None = None
    verify_hostname: bool = True

    _files = field_validator("ca_file", "cert_file", "key_file")(_readable)

    @model_validator(mode="after")
    def _pair(self):
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("cert_file and key_file go together (mutual TLS needs both)")
        return self

    def args(self) -> dict:
        return _plain(self)

    @property
    def mutual(self) -> bool:
        return bool(self.cert_file)


class FieldSource(_Spec):
    """Where a mapped dead-letter field is read: a header (by name, any case) or a JMESPath into the JSON body."""

    header: str | None = None
    path: str | None = None

    @model_validator(mode="after")
    def _one(self):
        if bool(self.header) == bool(self.path):
            raise ValueError("give header or path, one of them")
        if self.path:
            import jmespath
            from jmespath.exceptions import JMESPathError

            try:
                jmespath.compile(self.path)
            except JMESPathError as exc:
                raise ValueError(f"path {self.path!r} is not JMESPath: {exc}") from None
        return self


def _sources(value: Any) -> Any:
    # `exception_type: {header: x-error}`, or a list tried in order; a bare string is a header's name.
    items = value if isinstance(value, list) else [value]
    return [{"header": item} if isinstance(item, str) else item for item in items]


class DeadLetterMapping(_Spec):
    """How one source's dead letters say what failed, for a convention dlq.conventions does not know: each field
    from the first of its sources that gives a value (README, "Dead-letter conventions")."""

    origin: list[FieldSource] = Field(default_factory=list)
    origin_partition: list[FieldSource] = Field(default_factory=list)
    origin_offset: list[FieldSource] = Field(default_factory=list)
    exception_type: list[FieldSource] = Field(default_factory=list)
    exception_message: list[FieldSource] = Field(default_factory=list)
    stacktrace: list[FieldSource] = Field(default_factory=list)
    message_type: list[FieldSource] = Field(default_factory=list)
    correlation_id: list[FieldSource] = Field(default_factory=list)
    failed_at: list[FieldSource] = Field(default_factory=list)
    delivery_count: list[FieldSource] = Field(default_factory=list)
    failed_in: list[FieldSource] = Field(default_factory=list)

    _listed = field_validator("*", mode="before")(_sources)

    def rules(self) -> dict[str, list[dict]]:
        """field -> [{"header": ...} | {"path": ...}], for dlq.conventions.apply_mapping."""
        return {
            name: [source.model_dump(exclude_none=True) for source in getattr(self, name)]
            for name in type(self).model_fields
            if getattr(self, name)
        }


# DLQ name (or glob, "*_error") -> its mapping; every kind of connection may carry one.
DeadLetters = dict[str, DeadLetterMapping]


SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "AWS_MSK_IAM"]
_SASL_FIELDS = {
    "PLAIN": ({"username", "password"}, set()),
    "SCRAM-SHA-256": ({"username", "password"}, set()),
    "SCRAM-SHA-512": ({"username", "password"}, set()),
    "OAUTHBEARER": ({"token_endpoint_url", "client_id", "client_secret"}, {"scope", "extensions"}),
    "AWS_MSK_IAM": ({"region"}, {"profile", "role_arn", "role_session_name"}),
}


class KafkaSasl(_Spec):
    mechanism: SaslMechanism
    username: str | None = None
    password: SecretStr | None = None
    # OAUTHBEARER with OIDC client credentials
    token_endpoint_url: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    scope: str | None = None
    extensions: dict[str, str] | None = None
    # AWS MSK IAM: credentials from the default chain, a profile, or a role assumed from them
    region: str | None = None
    profile: str | None = None
    role_arn: str | None = None
    role_session_name: str | None = None

    @field_validator("mechanism", mode="before")
    @classmethod
    def _upper(cls, value):
        return (
            value.upper().replace("_", "-").replace("AWS-MSK-IAM", "AWS_MSK_IAM") if isinstance(value, str) else value
        )

    @model_validator(mode="after")
    def _fields_of_mechanism(self):
        required, optional = _SASL_FIELDS[self.mechanism]
        given = {k for k in type(self).model_fields if k != "mechanism" and getattr(self, k) is not None}
        missing = sorted(required - given)
        if missing:
            raise ValueError(f"{self.mechanism} needs {', '.join(missing)}")
        unused = sorted(given - required - optional)
        if unused:
            raise ValueError(f"{self.mechanism} does not use {', '.join(unused)}")
        return self


def _servers(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class SchemaRegistry(_Spec):
    """A Confluent-compatible schema registry the connection's messages name schema ids of (formats/registries.py
    builds confluent-kafka's SchemaRegistryClient from it). Basic auth or a static bearer token, and its own TLS."""

    url: str
    username: str | None = None
    password: SecretStr | None = None
    bearer_token: SecretStr | None = None
    # Confluent Cloud's bearer auth also names the logical cluster and identity pool.
    logical_cluster: str | None = None
    identity_pool: str | None = None
    tls: Tls | None = None
    timeout_seconds: float = Field(default=5, gt=0, le=60)

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        if parts.password:
            raise ValueError("give the password as password (or password_file), not inside the URL")
        return url.rstrip("/")

    @model_validator(mode="after")
    def _one_auth(self):
        if self.password is not None and not self.username:
            raise ValueError("password needs username")
        if self.username and self.bearer_token is not None:
            raise ValueError("give basic auth (username/password) or bearer_token, not both")
        if self.tls is not None and not self.url.startswith("https:"):
            raise ValueError("a tls section needs an https:// url")
        return self

    def client_conf(self) -> dict:
        """confluent-kafka's SchemaRegistryClient configuration, secrets in clear: for that client and nothing else."""
        conf: dict[str, Any] = {"url": self.url, "timeout": self.timeout_seconds, "max.retries": 1}
        if self.username:
            password = self.password.get_secret_value() if self.password is not None else ""
            conf["basic.auth.user.info"] = f"{self.username}:{password}"
        if self.bearer_token is not None:
            conf["bearer.auth.credentials.source"] = "STATIC_TOKEN"
            conf["bearer.auth.token"] = self.bearer_token.get_secret_value()
            conf["bearer.auth.logical.cluster"] = self.logical_cluster or ""
            if self.identity_pool:
                conf["bearer.auth.identity.pool.id"] = self.identity_pool
        if self.tls is not None:
            if self.tls.ca_file:
                conf["ssl.ca.location"] = self.tls.ca_file
            if self.tls.cert_file:
                conf["ssl.certificate.location"] = self.tls.cert_file
                conf["ssl.key.location"] = self.tls.key_file
            if self.tls.key_password is not None:
                conf["ssl.key.password"] = self.tls.key_password.get_secret_value()
        return conf


class KafkaConnection(_Spec):
    bootstrap_servers: list[str] = Field(min_length=1)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl: KafkaSasl | None = None
    tls: Tls | None = None
    # Any other librdkafka property, passed through as given (and winning over what the adapter derives).
    properties: dict[str, str | int | float | bool] = Field(default_factory=dict)
    # Where the schema ids in its messages' Confluent wire format are looked up (formats/, ADR 0051). Not the
    # adapter's business: adapter_args() leaves it out.
    schema_registry: SchemaRegistry | None = None
    dead_letters: DeadLetters = Field(default_factory=dict)

    _split = field_validator("bootstrap_servers", mode="before")(_servers)

    @field_validator("security_protocol", mode="before")
    @classmethod
    def _upper(cls, value):
        return value.upper() if isinstance(value, str) else value

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_port(cls, servers: list[str]) -> list[str]:
        for server in servers:
            host, _, port = server.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"{server!r} is not host:port")
        return servers

    @model_validator(mode="after")
    def _protocol_matches(self):
        sasl_protocol = self.security_protocol.startswith("SASL_")
        if sasl_protocol and self.sasl is None:
            raise ValueError(f"security_protocol {self.security_protocol} needs a sasl section")
        if self.sasl is not None and not sasl_protocol:
            raise ValueError("a sasl section needs security_protocol SASL_PLAINTEXT or SASL_SSL")
        if self.tls is not None and not self.security_protocol.endswith("SSL"):
            raise ValueError("a tls section needs security_protocol SSL or SASL_SSL")
        return self

    def adapter_args(self) -> tuple[tuple, dict]:
        kwargs: dict[str, Any] = {}
        if self.security_protocol != "PLAINTEXT":
            kwargs["security_protocol"] = self.security_protocol
        if self.sasl is not None:
            kwargs["sasl"] = _plain(self.sasl)
        if self.tls is not None:
            kwargs["tls"] = self.tls.args()
        if self.properties:
            kwargs["properties"] = dict(self.properties)
        return (",".join(self.bootstrap_servers),), kwargs

    def describe(self) -> dict:
        auth = "none"
        if self.sasl is not None:
            auth = f"SASL {self.sasl.mechanism}" + (f" as {self.sasl.username}" if self.sasl.username else "")
            if self.sasl.mechanism == "AWS_MSK_IAM":
                auth += f" ({self.sasl.role_arn or self.sasl.profile or 'default credentials'})"
        if self.tls is not None and self.tls.mutual:
            auth = "mutual TLS" if auth == "none" else f"{auth}, mutual TLS"
        described = {
            "address": ",".join(self.bootstrap_servers),
            "auth": auth,
            "tls": self.security_protocol.endswith("SSL"),
        }
        if self.schema_registry is not None:
            described["schema_registry"] = self.schema_registry.url
        return described


class SqsConnection(_Spec):
    """An AWS account and region (or an endpoint standing in for one); serves SQS and SNS."""

    region: str
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    session_token: SecretStr | None = None
    profile: str | None = None
    role_arn: str | None = None
    external_id: str | None = None
    role_session_name: str | None = None
    dead_letters: DeadLetters = Field(default_factory=dict)

    @model_validator(mode="after")
    def _credentials(self):
        if bool(self.access_key_id) != bool(self.secret_access_key):
            raise ValueError("access_key_id and secret_access_key go together")
        if self.profile and self.access_key_id:
            raise ValueError("give a profile or access keys, not both")
        if (self.external_id or self.role_session_name) and not self.role_arn:
            raise ValueError("external_id and role_session_name need role_arn")
        return self

    def adapter_args(self) -> tuple[tuple, dict]:
        kwargs = _plain(self)
        # Today's adapter takes these four as required arguments; the rest only when given.
        for key in ("endpoint_url", "region", "access_key_id", "secret_access_key"):
            kwargs.setdefault(key, None)
        return (), kwargs

    def describe(self) -> dict:
        if self.role_arn:
            auth = f"role {self.role_arn}"
        elif self.profile:
            auth = f"profile {self.profile}"
        elif self.access_key_id:
            auth = f"access key {self.access_key_id[:4]}…"
        else:
            auth = "default credentials"
        address = self.region + (f" at {self.endpoint_url}" if self.endpoint_url else "")
        return {"address": address, "auth": auth, "tls": (self.endpoint_url or "https:").startswith("https:")}


class RabbitMQConnection(_Spec):
    url: SecretStr  # amqp(s)://user:password@host:port/vhost: the password lives in it, so the whole URL is secret
    tls: Tls | None = None
    management_url: SecretStr | None = None
    management_username: str | None = None
    management_password: SecretStr | None = None
    dead_letters: DeadLetters = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _scheme(cls, url: SecretStr) -> SecretStr:
        if urllib.parse.urlsplit(url.get_secret_value()).scheme not in ("amqp", "amqps"):
            raise ValueError("must be an amqp:// or amqps:// URL")
        return url

    @field_validator("management_url")
    @classmethod
    def _http(cls, url: SecretStr | None) -> SecretStr | None:
        if url is not None and urllib.parse.urlsplit(url.get_secret_value()).scheme not in ("http", "https"):
            raise ValueError("must be an http:// or https:// URL")
        return url

    @model_validator(mode="after")
    def _tls_needs_amqps(self):
        if self.tls is not None and not self.url.get_secret_value().startswith("amqps:"):
            raise ValueError("a tls section needs an amqps:// url")
        if self.management_password is not None and not self.management_username:
            raise ValueError("management_password needs management_username")
        return self

    def adapter_args(self) -> tuple[tuple, dict]:
        kwargs = _plain(self)
        return (kwargs.pop("url"),), kwargs

    def describe(self) -> dict:
        parts = urllib.parse.urlsplit(self.url.get_secret_value())
        vhost = urllib.parse.unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
        user = urllib.parse.unquote(parts.username or "guest")
        auth = f"user {user}" + (", mutual TLS" if self.tls is not None and self.tls.mutual else "")
        return {"address": f"{_host_port(parts)} vhost {vhost}", "auth": auth, "tls": parts.scheme == "amqps"}


class NatsConnection(_Spec):
    servers: list[str] = Field(min_length=1)
    user: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    creds_file: str | None = None
    nkey_seed_file: str | None = None
    tls: Tls | None = None
    jetstream_domain: str | None = None
    dead_letters: DeadLetters = Field(default_factory=dict)

    _split = field_validator("servers", mode="before")(_servers)
    _files = field_validator("creds_file", "nkey_seed_file")(_readable)

    @field_validator("servers")
    @classmethod
    def _urls(cls, servers: list[str]) -> list[str]:
        for server in servers:
            if urllib.parse.urlsplit(server).scheme not in ("nats", "tls", "ws", "wss"):
                raise ValueError(f"{_without_credentials(server)!r} is not a nats://, tls://, ws:// or wss:// URL")
        return servers

    @model_validator(mode="after")
    def _one_way_in(self):
        ways = [w for w, given in (("user/password", self.user), ("token", self.token), ("creds_file",
                self.creds_file), ("nkey_seed_file", self.nkey_seed_file)) if given]  # fmt: skip
        if len(ways) > 1:
            raise ValueError(f"give one way to authenticate, not {' and '.join(ways)}")
        if self.password is not None and not self.user:
            raise ValueError("password needs user")
        return self

    def adapter_args(self) -> tuple[tuple, dict]:
        kwargs = _plain(self)
        return (",".join(kwargs.pop("servers")),), kwargs

    def describe(self) -> dict:
        if self.creds_file:
            auth = "creds file"
        elif self.nkey_seed_file:
            auth = "nkey"
        elif self.token:
            auth = "token"
        elif self.user:
            auth = f"user {self.user}"
        else:
            auth = "none"
        if self.tls is not None and self.tls.mutual:
            auth += ", mutual TLS"
        tls = self.tls is not None or any(s.startswith(("tls:", "wss:")) for s in self.servers)
        address = ",".join(_without_credentials(s) for s in self.servers)
        if self.jetstream_domain:
            address += f" (JetStream domain {self.jetstream_domain})"
        return {"address": address, "auth": auth, "tls": tls}


SPECS: dict[str, type[_Spec]] = {
    "kafka": KafkaConnection,
    "sqs": SqsConnection,
    "rabbitmq": RabbitMQConnection,
    "nats": NatsConnection,
}
ConnectionSpec = KafkaConnection | SqsConnection | RabbitMQConnection | NatsConnection


def _plain(spec: BaseModel) -> dict:
    """The spec's set values with secrets in clear, for a client library and nothing else."""

    def clear(value):
        if isinstance(value, SecretStr):
            return value.get_secret_value()
        if isinstance(value, BaseModel):
            return _plain(value)
        if isinstance(value, dict):
            return {k: clear(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clear(v) for v in value]
        return value

    # dead_letters is the console's (dlq.conventions), not the client's.
    return {
        k: clear(getattr(spec, k))
        for k in spec.model_fields_set
        if getattr(spec, k) is not None and k != "dead_letters"
    }


def _host_port(parts: urllib.parse.SplitResult) -> str:
    host = parts.hostname or ""
    return f"{host}:{parts.port}" if parts.port else host


def _without_credentials(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{_host_port(parts)}" if parts.scheme else url


def split_key(key: str) -> tuple[str, str]:
    """ "kafka:prod-eu" → ("kafka", "prod-eu"); "kafka" → ("kafka", "") (the kind's only or default connection)."""
    kind, _, name = key.partition(":")
    return kind, name


# --- reading ---


def load(
    path: str | os.PathLike | None, environ: Mapping[str, str], legacy: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, dict[str, ConnectionSpec]]:
    """kind → name → validated spec, from the file at `path` (if any) and the legacy variables' `default`s.

    `legacy` is kind → raw settings from the old one-broker variables (KAFKA_BOOTSTRAP_SERVERS, ...); each becomes
    the kind's `default` connection, unless the file names one of that kind already (then the file must decide).
    """
    raw: dict[str, dict[str, Any]] = {}
    label = "connections file"
    if path:
        label = str(path)
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConnectionsError(f"SWITCHYARD_CONNECTIONS={path}: cannot be read: {exc.strerror or exc}") from None
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConnectionsError(f"{label}: not valid YAML: {exc}") from None
        if document is None:
            document = {}
        if not isinstance(document, dict):
            raise ConnectionsError(f"{label}: the top level must map kinds ({', '.join(KINDS)}) to connections")
        for kind, connections in document.items():
            if kind not in KINDS:
                raise ConnectionsError(f"{label}: {kind!r} is not a kind of connection; known: {', '.join(KINDS)}")
            if connections is None:
                continue
            if not isinstance(connections, dict):
                raise ConnectionsError(f"{label}: {kind} must map connection names to their settings")
            raw[kind] = connections
    result: dict[str, dict[str, ConnectionSpec]] = {}
    for kind, connections in raw.items():
        for name, settings in connections.items():
            where = f"{label}: {kind}.{name}"
            if not isinstance(name, str) or not NAME.fullmatch(name):
                raise ConnectionsError(
                    f"{where}: a connection name is letters, digits, '.', '_' or '-' (at most 63, not starting "
                    "with a symbol)"
                )
            result.setdefault(kind, {})[name] = _validate(kind, settings, environ, where)
    for kind, settings in (legacy or {}).items():
        if not settings:
            continue
        if DEFAULT in result.get(kind, {}):
            raise ConnectionsError(
                f"{label}: {kind}.{DEFAULT} is defined there and by the environment variables of a single "
                f"{kind} broker; remove one of them"
            )
        where = f"the {kind} environment variables"
        # Taken as given: a password from the environment may hold a "${" of its own.
        result.setdefault(kind, {})[DEFAULT] = _validate(kind, dict(settings), None, where)
    return result


def _validate(kind: str, settings: Any, environ: Mapping[str, str] | None, where: str) -> ConnectionSpec:
    if not isinstance(settings, dict):
        raise ConnectionsError(f"{where}: must be a mapping of settings")
    resolved = settings if environ is None else _resolve(settings, environ, where)
    try:
        return SPECS[kind].model_validate(resolved)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        key = ".".join(str(part) for part in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConnectionsError(f"{where}{'.' + key if key else ''}: {message}{more}") from None


def _resolve(value: Any, environ: Mapping[str, str], where: str) -> Any:
    """Substitute ${VAR} in every string and read `<secret>_file` keys, recursively."""
    if isinstance(value, str):

        def substitute(match: re.Match) -> str:
            name = match.group(1)
            if name not in environ:
                raise ConnectionsError(f"{where}: ${{{name}}} is used but the variable {name} is not set")
            return environ[name]

        return _VARIABLE.sub(substitute, value)
    if isinstance(value, list):
        return [_resolve(v, environ, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    resolved: dict[str, Any] = {}
    for key, item in value.items():
        key = str(key)
        base = key.removesuffix("_file")
        if key.endswith("_file") and base in SECRET_KEYS:
            if base in value:
                raise ConnectionsError(f"{where}.{key}: give {base} or {key}, not both")
            path = _resolve(item, environ, f"{where}.{key}")
            try:
                resolved[base] = Path(str(path)).read_text().strip()
            except OSError as exc:
                raise ConnectionsError(f"{where}.{key}: {path} cannot be read: {exc.strerror or exc}") from None
            continue
        resolved[key] = _resolve(item, environ, f"{where}.{key}")
    return resolved


def secret_values(specs: Mapping[str, Mapping[str, ConnectionSpec]]) -> set[str]:
    """Every secret the connections hold, as it could show up in a client's error text: whole values, and the
    password inside a URL (raw and percent-decoded). Short ones are left out: scrubbing "ab" would maul the text."""
    found: set[str] = set()

    def walk(value):
        if isinstance(value, SecretStr):
            text = value.get_secret_value()
            found.add(text)
            parts = urllib.parse.urlsplit(text)
            if parts.scheme and parts.password:
                found.update({parts.password, urllib.parse.unquote(parts.password)})
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, dict | list):
            for item in value.values() if isinstance(value, dict) else value:
                walk(item)
        elif isinstance(value, str) and "://" in value:
            parts = urllib.parse.urlsplit(value)  # nats://user:password@host in a server list
            if parts.password:
                found.update({parts.password, urllib.parse.unquote(parts.password)})

    for connections in specs.values():
        for spec in connections.values():
            walk(spec)
    return {text for text in found if len(text) >= 4}
