"""The deployment kit: the Helm chart, compose.yaml and the container image.

The chart is linted and rendered by Helm's own engine (helm-python-sdk binds Helm's Go SDK), and every
object it renders is validated against the Kubernetes API schemas of the oldest and newest versions
it supports (kubernetes-validate, the role kubeconform plays elsewhere). What the bridge reads from
its environment is checked against ``Settings`` itself, so a renamed variable breaks here, not in a
cluster. The image is built and smoke-tested only where a container engine answers.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import kubernetes_validate
import pytest
import yaml
from helm_python import chart as helm
from pydantic import SecretStr

from bridge.config import Settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "slack-coder-bridge"
COMPOSE = ROOT / "compose.yaml"
ENV_EXAMPLE = ROOT / "deploy" / "bridge.env.example"
BRIDGE_SECRET = "rel-slack-coder-bridge"
"""The Secret the chart creates for the release ``rel`` when no existing one is named."""
KUBERNETES_VERSIONS = ["1.25", kubernetes_validate.latest_version()]
"""The chart's ``kubeVersion`` floor and the newest API the validator knows."""

BASE: dict[str, Any] = {
    "config": {"CODER_URL": "https://coder.example.com"},
    "secret": {
        "values": {
            "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_SIGNING_SECRET": "signing-test",
            "CODER_SESSION_TOKEN": "coder-test",
        }
    },
}

helm_python.disable_logging()  # Helm logs each `fail` it evaluates; the error raised carries it anyway.


def values(**overrides: Any) -> dict[str, Any]:
    """The base values with ``overrides`` merged in (dotted keys: ``database__type`` is database.type)."""
    merged = json.loads(json.dumps(BASE))
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split("__")
        node = merged
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return merged


def render(given: dict[str, Any]) -> list[dict[str, Any]]:
    """Every Kubernetes object the chart renders for ``given``, as ``helm template`` would."""
    with helm.Chart.load(CHART) as chart:
        files = chart.render(values=given, name="rel", namespace="bridge", is_install=True)
    return [
        doc
        for name, text in sorted(files.items())
        if name.endswith(".yaml")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def render_error(given: dict[str, Any]) -> str:
    """The message the chart refuses ``given`` with."""
    with helm.Chart.load(CHART) as chart, pytest.raises(helm_python.HelmRenderError) as refused:
        chart.render(values=given, name="rel", namespace="bridge", is_install=True)
    return str(refused.value)


def one(objects: list[dict[str, Any]], kind: str, component: str = "bridge") -> dict[str, Any]:
    """The single object of ``kind`` belonging to ``component``."""
    found = [
        o
        for o in objects
        if o["kind"] == kind
        and o["metadata"]["labels"].get("app.kubernetes.io/component", "bridge") == component
    ]
    assert len(found) == 1, f"{len(found)} {kind} objects for {component}"
    return found[0]


def bridge_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return containers[0]


def bridge_secrets(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Secret the chart made for the bridge, if it made one."""
    return [o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"] == BRIDGE_SECRET]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    """The container's explicit variables: their value, or their ``valueFrom``."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def setting_names() -> dict[str, bool]:
    """Every variable ``Settings`` reads, and whether it holds a secret."""
    names: dict[str, bool] = {}
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        choices = getattr(alias, "choices", ())
        for choice in choices:
            if str(choice).isupper():
                names[str(choice)] = field.annotation == SecretStr | None
    return names


DATABASES = {
    "bundled postgresql": values(database__type="postgresql", replicaCount=2),
    "external postgresql": values(
        database__type="external",
        secret__values={**BASE["secret"]["values"], "DATABASE_URL": "postgresql://b:p@db/b"},
    ),
    "sqlite": values(database__type="sqlite"),
    "existing secret": values(secret={"existingSecret": "bridge-secrets"}),
}


def test_helm_lint_finds_nothing_to_warn_about() -> None:
    report = helm.lint(CHART, values(), strict=True)
    assert report["errors"] == []
    # Severity 1 is information ("icon is recommended"); 2 is a warning, 4 an error.
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("given", DATABASES.values(), ids=DATABASES.keys())
def test_every_rendered_object_is_valid_for_the_supported_kubernetes_versions(given: dict[str, Any]) -> None:
    objects = render(given)
    assert {o["kind"] for o in objects} >= {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget"}
    for version in KUBERNETES_VERSIONS:
        for obj in objects:
            kubernetes_validate.validate(obj, version, strict=True)


def test_probes_use_the_health_endpoints_on_the_port_the_bridge_listens_on() -> None:
    container = bridge_container(render(values()))
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert int(env_of(container)["PORT"]) == ports["http"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    # The listener opens after migrations and the Slack and Coder handshakes: the startup probe waits.
    startup = container["startupProbe"]
    assert startup["httpGet"]["path"] == "/healthz"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120
    # /readyz waits up to 5 s for the database before answering 503.
    assert container["readinessProbe"]["timeoutSeconds"] > 5


def test_every_variable_the_chart_sets_is_a_setting_of_the_bridge() -> None:
    """Names come from Settings; secret ones only from a Secret, never from the ConfigMap."""
    known = setting_names()
    for name, given in DATABASES.items():
        objects = render(given)
        container = bridge_container(objects)
        explicit = env_of(container)
        # DATABASE_PASSWORD is no setting: Kubernetes substitutes it into DATABASE_URL.
        assert set(explicit) - {"DATABASE_PASSWORD"} <= set(known), name
        config = one(objects, "ConfigMap")["data"]
        assert set(config) <= set(known), name
        assert not [key for key in config if known[key]], f"{name}: secret in the ConfigMap"
        refs = [source for source in container["envFrom"] if "secretRef" in source]
        secret = given["secret"].get("existingSecret") or BRIDGE_SECRET
        assert refs == [{"secretRef": {"name": secret}}]
    secret_settings = {name for name, secret in known.items() if secret}
    template = (CHART / "templates" / "_helpers.tpl").read_text()
    allowed = template.split('$known := list "', 1)[1].split(" -}}", 1)[0]
    assert set(allowed.replace('"', "").split()) == secret_settings | {"DATABASE_URL"}


@pytest.mark.parametrize("name", ["bundled postgresql", "external postgresql", "sqlite"])
def test_the_pod_environment_is_a_configuration_the_bridge_serves_with(name: str) -> None:
    """What the pod receives (ConfigMap, then Secret, then its own variables) read by ``Settings``."""
    objects = render(DATABASES[name])
    environment: dict[str, Any] = {**one(objects, "ConfigMap")["data"]}
    environment |= bridge_secrets(objects)[0]["stringData"]
    explicit = env_of(bridge_container(objects))
    environment |= {key: value for key, value in explicit.items() if isinstance(value, str)}
    environment["DATABASE_URL"] = environment["DATABASE_URL"].replace("$(DATABASE_PASSWORD)", "generated")
    settings = Settings.model_validate(environment)
    settings.require_serve()
    assert (settings.port, settings.metrics_host, settings.metrics_port) == (3000, "0.0.0.0", 9090)
    assert settings.shutdown_timeout == 10
    assert settings.database_url.startswith("sqlite" if name == "sqlite" else "postgresql://")


def test_the_chart_creates_the_secret_only_when_no_existing_one_is_named() -> None:
    assert [s["stringData"] for s in bridge_secrets(render(values()))] == [BASE["secret"]["values"]]
    assert bridge_secrets(render(DATABASES["existing secret"])) == []


def test_several_replicas_only_on_postgresql() -> None:
    refused = render_error(values(database__type="sqlite", replicaCount=2))
    assert "replicaCount above 1 needs PostgreSQL" in refused
    sqlite = render(DATABASES["sqlite"])
    deployment = one(sqlite, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}  # one writer on a ReadWriteOnce volume
    assert env_of(bridge_container(sqlite))["DATABASE_URL"] == "sqlite:////data/bridge.db"
    assert one(sqlite, "PersistentVolumeClaim")["spec"]["accessModes"] == ["ReadWriteOnce"]
    for name in ("bundled postgresql", "external postgresql"):
        deployment = one(render(values(**{**DATABASES[name], "replicaCount": 3})), "Deployment")
        assert deployment["spec"]["replicas"] == 3
        assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}


def test_bundled_postgresql_is_what_the_bridge_connects_to() -> None:
    objects = render(DATABASES["bundled postgresql"])
    statefulset = one(objects, "StatefulSet", "postgresql")
    service = one(objects, "Service", "postgresql")
    secret = one(objects, "Secret", "postgresql")
    pod = statefulset["spec"]["template"]
    database = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    env = env_of(bridge_container(objects))
    assert env["DATABASE_PASSWORD"] == {
        "secretKeyRef": {"name": secret["metadata"]["name"], "key": "POSTGRES_PASSWORD"}
    }
    url = env["DATABASE_URL"].replace("$(DATABASE_PASSWORD)", "generated")
    expected = (
        f"postgresql://{database['POSTGRES_USER']}:generated@{service['metadata']['name']}:5432/"
        f"{database['POSTGRES_DB']}"
    )
    assert url == expected
    assert Settings(database_url=url).database_url == url
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert len(secret["data"]["POSTGRES_PASSWORD"]) >= 32
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


@pytest.mark.parametrize("timeout", [10, 42.5])
def test_kubernetes_waits_longer_than_the_bridge_drains(timeout: float) -> None:
    """SIGTERM gives the bridge BRIDGE_SHUTDOWN_TIMEOUT to finish; the pod is killed only after that."""
    objects = render(values(shutdownTimeout=timeout))
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert float(env_of(pod["containers"][0])["BRIDGE_SHUTDOWN_TIMEOUT"]) == timeout
    assert pod["terminationGracePeriodSeconds"] >= timeout + 5


def test_metrics_are_annotated_for_prometheus_and_kept_out_of_the_service() -> None:
    objects = render(values(metrics__port=9464))
    template = one(objects, "Deployment")["spec"]["template"]
    container = template["spec"]["containers"][0]
    env = env_of(container)
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert annotations["prometheus.io/port"] == env["BRIDGE_METRICS_PORT"] == "9464"
    assert {"name": "metrics", "containerPort": 9464} in container["ports"]
    assert env["BRIDGE_METRICS_HOST"] == "0.0.0.0"  # its default, loopback, is out of Prometheus' reach
    assert [p["targetPort"] for p in one(objects, "Service")["spec"]["ports"]] == ["http"]


def test_disruption_budget_and_resources() -> None:
    objects = render(values(replicaCount=2))
    deployment = one(objects, "Deployment")
    budget = one(objects, "PodDisruptionBudget")
    assert budget["spec"]["selector"] == deployment["spec"]["selector"]
    assert budget["spec"]["maxUnavailable"] == 1
    resources = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert "cpu" not in resources["limits"]  # a throttled event loop would answer Slack late


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (values(config={}), "config.CODER_URL is required"),
        (values(database__type="mysql"), "database.type must be postgresql, external or sqlite"),
        (values(secret__values={"SLACK_TOKEN": "x"}), "secret.values.SLACK_TOKEN is not a secret setting"),
        (values(secret__values={"SLACK_BOT_TOKEN": "x"}), "secret.values.CODER_SESSION_TOKEN is required"),
        (values(secret__values={"CODER_SESSION_TOKEN": "x"}), "secret.values.SLACK_BOT_TOKEN is required"),
        (values(database__type="external"), "database.type external needs secret.values.DATABASE_URL"),
    ],
    ids=[
        "no Coder URL",
        "unknown database",
        "misspelt secret",
        "missing token",
        "no Slack credential",
        "external without URL",
    ],
)
def test_bad_values_are_refused_with_the_way_out(given: dict[str, Any], message: str) -> None:
    assert message in render_error(given)


def load_compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def test_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads((ROOT / "tests" / "fixtures" / "deploy" / "compose-spec.json").read_text())
    jsonschema.Draft7Validator(schema).validate(load_compose())


def test_compose_runs_the_bridge_on_a_healthy_postgresql() -> None:
    services = load_compose()["services"]
    bridge, postgres = services["bridge"], services["postgres"]
    assert bridge["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert "pg_isready" in postgres["healthcheck"]["test"]
    assert any("/readyz" in part for part in bridge["healthcheck"]["test"])
    url = bridge["environment"]["DATABASE_URL"]
    pg = postgres["environment"]
    credentials = f"{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}"
    assert url == f"postgresql://{credentials}@postgres:5432/{pg['POSTGRES_DB']}"
    assert Settings(database_url=url).database_url == url
    assert "ports" not in postgres
    assert all(port.startswith("127.0.0.1:") for port in bridge["ports"])
    grace = int(bridge["stop_grace_period"].removesuffix("s"))
    assert grace >= float(bridge["environment"]["BRIDGE_SHUTDOWN_TIMEOUT"]) + 5
    assert set(bridge["environment"]) <= set(setting_names())


def test_compose_and_chart_run_the_same_pinned_postgresql() -> None:
    chart_values = yaml.safe_load((CHART / "values.yaml").read_text())
    image = load_compose()["services"]["postgres"]["image"]
    assert image == chart_values["postgresql"]["image"]
    assert re.fullmatch(r"postgres:[\w.-]+@sha256:[0-9a-f]{64}", image)


def test_env_example_names_only_settings_and_holds_no_secret() -> None:
    known = setting_names()
    entries = [
        line.lstrip("# ").split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if "=" in line and line.lstrip("# ").split("=", 1)[0].isupper()
    ]
    assert {"SLACK_BOT_TOKEN", "CODER_URL", "CODER_SESSION_TOKEN"} <= {name for name, _ in entries}
    for name, value in entries:
        assert name in known, name
        assert not (known[name] and value), f"{name} has a value in the example"
    for service in load_compose()["services"].values():
        for env_file in service.get("env_file", []):
            assert (ROOT / env_file["path"]).with_suffix(".env.example") == ENV_EXAMPLE
    ignored = subprocess.run(["git", "check-ignore", "-q", "deploy/bridge.env"], cwd=ROOT, check=False)
    assert ignored.returncode == 0, "deploy/bridge.env must be ignored by git: it holds the real tokens"


def docker_unavailable() -> str | None:
    """Why the image cannot be built here, or None when a container engine answers."""
    if shutil.which("docker") is None:
        return "no docker client installed"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30, check=False)
    if info.returncode != 0:
        return "no container engine answers `docker info` (a client alone cannot build images)"
    return None


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    reason = docker_unavailable()
    if reason is not None:
        pytest.skip(f"image build and smoke test skipped: {reason}")
    tag = f"slack-coder-bridge:test-{uuid.uuid4().hex[:8]}"
    built = subprocess.run(
        ["docker", "build", "--quiet", "-t", tag, str(ROOT)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    try:
        yield tag
    finally:
        subprocess.run(["docker", "image", "rm", "--force", tag], capture_output=True, check=False)


@pytest.mark.timeout(1200)
def test_the_image_runs_the_demo_as_the_chart_runs_it(image: str) -> None:
    """The real bridge inside the image plays the demo against its simulators, as the chart's user,
    on a read-only root file system with only /tmp writable."""
    as_the_chart = ["--read-only", "--tmpfs", "/tmp", "--user", "10001:10001"]
    done = subprocess.run(
        ["docker", "run", "--rm", *as_the_chart, image, "bridge", "demo"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "fix the login bug" in done.stdout
