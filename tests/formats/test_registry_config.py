"""The schema_registry block of a Kafka connection in the connections file: validated, secrets masked, handed in
clear only to confluent-kafka's registry client."""

import pytest

from brokers.connections import ConnectionsError, load, secret_values


def _write(tmp_path, text: str):
    path = tmp_path / "connections.yaml"
    path.write_text(text)
    return path


def test_it_reads_a_schema_registry_with_basic_auth_from_a_file_secret(tmp_path):
    secret = tmp_path / "sr-password"
    secret.write_text("s3cret-registry-pw\n")
    path = _write(
        tmp_path,
        f"""
kafka:
  prod:
    bootstrap_servers: b1:9092
    schema_registry:
      url: https://sr.example:8081/
      username: console
      password_file: {secret}
""",
    )
    spec = load(path, {})["kafka"]["prod"]
    registry = spec.schema_registry
    assert registry.url == "https://sr.example:8081"
    assert "s3cret" not in repr(spec) and "s3cret" not in str(spec.describe())
    assert spec.describe()["schema_registry"] == "https://sr.example:8081"
    assert registry.client_conf()["basic.auth.user.info"] == "console:s3cret-registry-pw"
    assert "s3cret-registry-pw" in secret_values({"kafka": {"prod": spec}})
    assert "schema_registry" not in str(spec.adapter_args())  # the Kafka adapter never sees it


def test_it_reads_a_bearer_token_from_the_environment(tmp_path):
    path = _write(
        tmp_path,
        """
kafka:
  cloud:
    bootstrap_servers: b1:9092
    schema_registry: {url: "https://psrc.example", bearer_token: "${SR_TOKEN}", logical_cluster: lsrc-1}
""",
    )
    conf = load(path, {"SR_TOKEN": "tok-abc-123"})["kafka"]["cloud"].schema_registry.client_conf()
    assert conf["bearer.auth.credentials.source"] == "STATIC_TOKEN"
    assert (conf["bearer.auth.token"], conf["bearer.auth.logical.cluster"]) == ("tok-abc-123", "lsrc-1")


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ("{url: ftp://sr}", "kafka.prod.schema_registry.url: must be an http:// or https:// URL"),
        ("{url: 'http://u:p@sr'}", "not inside the URL"),
        ("{url: 'http://sr', username: a, password: b, bearer_token: c}", "not both"),
        ("{url: 'http://sr', tls: {verify_hostname: false}}", "a tls section needs an https:// url"),
    ],
)
def test_it_refuses_a_bad_schema_registry_block_naming_the_key(tmp_path, block, message):
    path = _write(tmp_path, f"kafka:\n  prod:\n    bootstrap_servers: b1:9092\n    schema_registry: {block}\n")
    with pytest.raises(ConnectionsError, match=message.replace(".", r"\.").replace("/", "/")):
        load(path, {})


def test_it_refuses_a_schemas_file_entry_naming_it(tmp_path):
    from formats.local import SchemasError, load

    path = _write(tmp_path, "- match: 'orders*'\n  avro: missing.avsc\n")
    with pytest.raises(SchemasError, match=r"entry 1\.avro: .*missing\.avsc"):
        load(str(path))
    path = _write(tmp_path, "- match: 'orders*'\n  protobuf: {message: a.B}\n")
    with pytest.raises(SchemasError, match=r"entry 1\.protobuf: schemaless, or \{descriptor_set, message\}"):
        load(str(path))
