"""The deploy files hold together without a cluster or a Docker engine: the Helm chart renders
to objects Kubernetes' schemas accept, the compose file follows the Compose specification, the
alert rules pass promtool's checks and unit tests, and the image builds as a non-root user.

helm, promtool and hadolint are installed by `make test` (.ci/run); a developer without them
sees these tests skipped, CI (CI=true) sees them fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from scoring.config import load_config
from streams.cli import build_parser
from streams.topics import TopicNames, load_topic_policy, topic_specs

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "engage"
COMPOSE = ROOT / "deploy" / "compose"
RULES = CHART / "files" / "engage-rules.yml"
DASHBOARD = CHART / "files" / "engage-dashboard.json"
K8S_VERSIONS = ("1.28.0", "1.37.0")

SECURED = [
    "--set", "kafka.securityProtocol=SASL_SSL", "--set", "kafka.saslMechanism=SCRAM-SHA-512",
    "--set", "kafka.saslUsername=engage", "--set", "kafka.password=pw",
    "--set", "kafka.tls.secretName=kafka-ca", "--set", "kafka.tls.certKey=user.crt",
    "--set", "kafka.tls.keyKey=user.key",
    "--set", "webhook.enabled=true", "--set", "webhook.url=https://hooks.example/engage",
    "--set", "webhook.secretName=webhook", "--set", r"webhook.types=vip_promotion\,win_back",
    "--set", r"topics.overrides.engagement\.dlq.partitions=3",
    "--set", r"topics.overrides.engagement\.dlq.retention_ms=2592000000",
    "--set", r"topics.overrides.triggers\.vip_promotion.config.max\.message\.bytes=2097152",
    "--set-string", "rules=[scoring]\nhalf_life_days = 10\n",
]
VALUE_SETS = {
    "defaults": [],
    "secured": SECURED,
    "memory-store": ["--set", "persistence.enabled=false", "--set", "worker.store=memory",
                     "--set", "serviceMonitor.enabled=false",
                     "--set", "prometheusRule.enabled=false",
                     "--set", "grafanaDashboard.enabled=false", "--set", "replicaCount=1"],
}


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(ROOT / ".venv" / "bin"))
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed (make test installs it)")
        pytest.skip(f"{name} is not installed (make test installs it)")
    return found


def render(*values: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [tool("helm"), "template", "rel", str(CHART), "--set", "modelSigningKey.value=k", *values],
        capture_output=True, text=True, check=True, timeout=60,
    )
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_chart_renders_objects_kubernetes_accepts(values: list[str]) -> None:
    objects = render(*values)
    builtin = [o for o in objects if o["apiVersion"] != "monitoring.coreos.com/v1"]
    assert {o["kind"] for o in builtin} >= {"StatefulSet", "Service", "ConfigMap", "Secret"}
    for version in K8S_VERSIONS:
        for obj in builtin:
            kubernetes_validate.validate(obj, version, strict=True)


def test_chart_workers_probes_security_and_disruption_budget() -> None:
    objects = render(*SECURED)
    (worker,) = by_kind(objects, "StatefulSet")
    pod = worker["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz/", "port": "web"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz/", "port": "web"}
    assert container["resources"]["requests"] == {"cpu": "500m", "memory": "768Mi"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"]: e for e in container["env"]}
    assert env["ENGAGE_BIND_ADDRESS"]["value"] == "0.0.0.0"
    assert env["ENGAGE_ADVERTISED_HOST"]["value"] == "$(POD_IP)"
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert env["ENGAGE_KAFKA_SASL_PASSWORD_FILE"]["value"] == "/etc/engage/kafka-password/password"
    assert env["ENGAGE_KAFKA_SSL_CERTFILE"]["value"] == "/etc/engage/kafka-tls/user.crt"
    assert "ENGAGE_KAFKA_SASL_PASSWORD" not in env  # the password only as a mounted file
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/etc/engage/kafka-password", "/etc/engage/kafka-tls", "/var/lib/engage"} <= mounts
    (pdb,) = by_kind(objects, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == worker["spec"]["selector"]["matchLabels"]


def worker_option_variables() -> set[str]:
    for action in build_parser()._actions:
        if hasattr(action, "choices") and isinstance(action.choices, dict):
            worker = action.choices["worker"]
            return {a.env for a in worker._actions if hasattr(a, "env")} | {
                "KAFKA_BOOTSTRAP_SERVERS"}
    raise AssertionError("no worker subcommand")


def test_every_variable_the_chart_and_compose_set_is_one_engage_reads() -> None:
    known = worker_option_variables() | {
        "ENGAGE_MODEL_SIGNING_KEY", "ENGAGE_KAFKA_SASL_PASSWORD_FILE",
        "ENGAGE_KAFKA_SSL_KEY_PASSWORD_FILE", "ENGAGE_WEBHOOK_SECRET",
        "ENGAGE_WEBHOOK_METRICS_PORT",  # read by the webhook sink (sinks/webhook.py)
    }
    chart_env: set[str] = set()
    for obj in render(*SECURED):
        if obj["kind"] in ("StatefulSet", "Deployment"):
            for container in obj["spec"]["template"]["spec"]["containers"]:
                chart_env |= {e["name"] for e in container["env"]}
    compose = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    compose_env = {name for service in compose["services"].values()
                   for name in service.get("environment", {})}
    engage_vars = {v for v in chart_env | compose_env if v.startswith(("ENGAGE_", "KAFKA_B"))}
    assert engage_vars - known == set()
    assert "ENGAGE_ADVERTISED_HOST" in chart_env and "ENGAGE_ADVERTISED_HOST" in compose_env


def test_chart_config_files_load_in_engage(tmp_path: Path) -> None:
    objects = render(*SECURED)
    config = next(o for o in by_kind(objects, "ConfigMap") if "topics.toml" in o["data"])
    topics = tmp_path / "topics.toml"
    topics.write_text(config["data"]["topics.toml"])
    policy = load_topic_policy(topics)
    specs = {s.name: s for s in topic_specs(TopicNames(), 12, policy=policy)}
    dlq = specs["engagement.dlq"]
    assert (dlq.partitions, dlq.replication_factor) == (3, 3)
    assert specs["triggers.vip_promotion"].config["max.message.bytes"] == "2097152"
    assert specs["interactions"].config["min.insync.replicas"] == "2"
    rules = tmp_path / "rules.toml"
    rules.write_text(config["data"]["rules.toml"])
    assert load_config(str(rules)).scoring.half_life_days == 10


def test_chart_monitoring_objects_match_the_shipped_files() -> None:
    objects = render(*SECURED)
    services = by_kind(objects, "Service")
    for monitor in by_kind(objects, "ServiceMonitor"):
        wanted = monitor["spec"]["selector"]["matchLabels"]
        matched = [s for s in services if wanted.items() <= s["metadata"]["labels"].items()]
        assert len(matched) == 1, monitor["metadata"]["name"]
        ports = {p["name"] for p in matched[0]["spec"]["ports"]}
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["port"] in ports
        assert endpoint["relabelings"][0]["targetLabel"] == "job"
    jobs = {m["spec"]["endpoints"][0]["relabelings"][0]["replacement"]
            for m in by_kind(objects, "ServiceMonitor")}
    assert jobs == {"engage-worker", "engage-webhook"}
    (rule,) = by_kind(objects, "PrometheusRule")
    assert rule["spec"] == yaml.safe_load(RULES.read_text())
    dashboard = next(o for o in by_kind(objects, "ConfigMap") if o["metadata"]["name"].endswith(
        "-dashboard"))
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["engage-dashboard.json"]) == json.loads(
        DASHBOARD.read_text())


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["--set", "modelSigningKey.value="],
         "modelSigningKey.value or modelSigningKey.secretName"),
        (["--set", "kafka.securityProtocol=SASL_SSL"], "kafka.saslMechanism is required"),
        (["--set", "webhook.enabled=true"], "webhook.url is required"),
    ],
)
def test_chart_refuses_incomplete_values(values: list[str], message: str) -> None:
    out = subprocess.run(
        [tool("helm"), "template", "rel", str(CHART), *values],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode != 0 and message in out.stderr


def test_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads((COMPOSE / "schema" / "compose-spec.json").read_text())
    compose = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    validator = jsonschema.Draft201909Validator(schema)
    assert [e.message for e in validator.iter_errors(compose)] == []
    broken = {**compose, "services": {**compose["services"], "kafka": {
        **compose["services"]["kafka"], "healthcheck": {"retries": "many"}}}}
    assert any("'many' is not of type 'number'" in e.message
               for e in validator.iter_errors(broken))
    services = compose["services"]
    assert {"kafka", "worker-1", "worker-2", "webhook", "prometheus", "grafana"} <= set(services)
    for name in ("worker-1", "worker-2"):
        assert services[name]["environment"]["ENGAGE_ADVERTISED_HOST"] == name
    for service in services.values():  # every published port on loopback only
        assert all(str(p).startswith("127.0.0.1:") for p in service.get("ports", []))
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE / source).exists(), source


def test_compose_prometheus_config_is_valid(tmp_path: Path) -> None:
    config = yaml.safe_load((COMPOSE / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/rules/engage-rules.yml"]
    config["rule_files"] = [str(RULES)]  # where compose mounts it from
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    out = subprocess.run([tool("promtool"), "check", "config", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 11 rules found" in out.stdout


def test_alert_rules_pass_promtool_checks_and_unit_tests() -> None:
    promtool = tool("promtool")
    checked = subprocess.run([promtool, "check", "rules", str(RULES)],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([promtool, "test", "rules", "engage-rules.test.yml"],
                            capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    tests = yaml.safe_load((Path(__file__).parent / "engage-rules.test.yml").read_text())
    tested_alerts = {c["alertname"] for t in tests["tests"] for c in t["alert_rule_test"]}
    assert alerts == tested_alerts  # every alert has a unit test


def test_dashboard_panels_query_prometheus_through_the_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(panels) >= 15
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"] and all(t["expr"] for t in panel["targets"])
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "job"}


def test_image_is_multi_stage_non_root_and_listens_on_all_interfaces() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.M)
    assert len(stages) >= 2
    final = text[text.rindex("\nFROM "):]
    user = re.findall(r"^USER\s+(\S+)", final, re.M)
    assert user and user[-1].split(":")[0] not in ("0", "root")
    assert "ENGAGE_BIND_ADDRESS=0.0.0.0" in final
    assert re.search(r"^COPY --from=build /opt/engage /opt/engage$", final, re.M)
    for sources in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for source in sources.split():
            assert (ROOT / source).exists(), source
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and "deploy/.kafka" in ignored
    linted = subprocess.run([tool("hadolint"), str(ROOT / "Dockerfile")],
                            capture_output=True, text=True, timeout=60)
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_worker_variables_in_docs_are_real() -> None:
    """docs/operations.md's settings table names only variables engage reads."""
    text = (ROOT / "docs" / "operations.md").read_text()
    named = set(re.findall(r"`(ENGAGE_[A-Z_]+)`", text))
    known = worker_option_variables() | {
        "ENGAGE_MODEL_SIGNING_KEY", "ENGAGE_MODEL_SIGNING_KEY_FILE",
        "ENGAGE_KAFKA_SASL_PASSWORD_FILE", "ENGAGE_KAFKA_SSL_KEY_PASSWORD_FILE",
        "ENGAGE_WEBHOOK_SECRET", "ENGAGE_WEBHOOK_METRICS_PORT",
    }
    assert named and named - known == set()
