"""What SREs are given, checked against running processes on a real broker:

- every metric the Grafana dashboard and the alert rules name is exported by a running worker
  (or by a running webhook sink), with the label values the rules select;
- a real Prometheus loads the shipped rules, evaluates every dashboard query against the real
  worker, and fires EngageWorkerDown when the worker stops;
- the worker's JSON logs are one JSON object per line.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import start_http_server
from prometheus_client.parser import text_string_to_metric_families

from sinks.webhook_consumer import WebhookSettings, run_webhook_sink
from sinks.webhook_delivery import RetryPolicy
from sinks.webhook_metrics import WebhookMetrics
from streams.topics import ensure_topics
from tests.integration.worker_process import (
    free_port,
    produce,
    read_until_counted,
    running_worker,
    simulated_records,
    stop_worker,
    unique_names,
    webhook_receiver,
)

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
FILES = ROOT / "deploy" / "helm" / "engage" / "files"
METRIC = re.compile(r"\b((?:engage|process|python)_[a-z0-9_]+)\b")
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum",
                                                              "_created"),
            "gauge": ("",), "info": ("_info",), "summary": ("", "_count", "_sum", "_created")}


def exported_names(exposition: str) -> set[str]:
    """Every series name the exposition declares (with its type) or carries samples of."""
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names |= {family.name + s for s in SUFFIXES.get(family.type, ("",))}
        names |= {sample.name for sample in family.samples}
    return names


def sampled(exposition: str, name: str) -> list[dict[str, str]]:
    return [s.labels for f in text_string_to_metric_families(exposition)
            for s in f.samples if s.name == name]


def dashboard_queries() -> list[str]:
    dashboard = json.loads((FILES / "engage-dashboard.json").read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    queries += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    return queries


def rule_expressions() -> list[str]:
    rules = yaml.safe_load((FILES / "engage-rules.yml").read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def run_webhook_sink_once(bootstrap: str, url: str) -> str:
    """The webhook sink with its metrics served, after one delivered, one failed and one
    malformed trigger (on topics of their own); returns its /metrics exposition."""
    names = unique_names()
    ensure_topics(bootstrap, names, 1)
    trigger = {"trigger_id": "t-ok", "type": "milestone", "user_id": "u1",
               "variant": "treatment"}
    produce(bootstrap, names.trigger("milestone"), [
        (b"u1", json.dumps(trigger).encode()),
        (b"u2", json.dumps({**trigger, "trigger_id": "t-fail", "user_id": "u2"}).encode()),
        (b"u3", b"{not json"),
    ])
    metrics = WebhookMetrics()
    port = free_port()
    start_http_server(port, addr="127.0.0.1", registry=metrics.registry)
    settings = WebhookSettings(
        url=url, secret=b"s3cret", broker=bootstrap, types=("milestone",),
        topic_prefix=names.prefix, group_id=f"{names.prefix}webhook",
        retry=RetryPolicy(max_attempts=1, timeout_s=5), deliver_expired=True,
    )
    report = asyncio.run(run_webhook_sink(settings, metrics=metrics, stop_after=3,
                                          idle_timeout_s=60))
    stats = report.sink
    assert (stats.delivered, stats.dead_lettered, stats.malformed) == (1, 2, 1)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


@contextmanager
def prometheus(tmp_path: Path, targets: dict[str, str]) -> Iterator[str]:
    """A real Prometheus on loopback scraping `targets` (job -> host:port) every second, with
    the shipped rules; EngageWorkerDown's `for` is cut from 2 minutes to 1 second."""
    binary = shutil.which("prometheus")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("prometheus is not installed (make test installs it)")
        pytest.skip("prometheus is not installed (make test installs it)")
    rules = yaml.safe_load((FILES / "engage-rules.yml").read_text())
    for rule in rules["groups"][0]["rules"]:
        if rule["alert"] == "EngageWorkerDown":
            rule["for"] = "1s"
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [str(tmp_path / "rules.yml")],
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [target]}]}
                           for job, target in targets.items()],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    address = f"127.0.0.1:{free_port()}"
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [binary, f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address={address}",
         "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        yield f"http://{address}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def api(base: str, path: str, **params: str) -> Any:
    url = f"{base}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return body["data"]


def eventually(check: Any, timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            result = check()
        except OSError:  # still starting
            result = None
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def test_dashboard_and_rules_name_real_metrics_and_prometheus_alerts_on_a_stopped_worker(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    names = unique_names()
    records, counted = simulated_records(users=30, days=8, seed=21)
    records += [(b"u1", b"{not json"), (b"u1", b'{"event_id": "x", "user_id": "u1"}')]
    ensure_topics(kafka_bootstrap, names, 2)
    with running_worker(kafka_bootstrap, names, tmp_path, "--log-level", "info",
                        "--log-format", "json") as worker, webhook_receiver() as url:
        produce(kafka_bootstrap, names.interactions, records)
        # an artifact that is not signed: the model reader refuses and counts it
        produce(kafka_bootstrap, names.churn_models, [(b"champion", b"not a signed artifact")])
        read_until_counted(kafka_bootstrap, names, counted)
        exposition = eventually(lambda: (lambda t: t if sampled(
            t, "engage_churn_model_artifacts_rejected_total") else None)(worker.metrics()))
        assert exposition, "the worker never counted the refused artifact"
        webhook_exposition = run_webhook_sink_once(kafka_bootstrap, url)

        exported = exported_names(exposition) | exported_names(webhook_exposition)
        named = {m for q in dashboard_queries() + rule_expressions() for m in METRIC.findall(q)}
        assert len(named) >= 20
        assert named - exported == set()
        # the label values the rules and panels select are the ones the processes emit
        assert {s["outcome"] for s in sampled(
            webhook_exposition, "engage_webhook_deliveries_total")} == {
            "delivered", "failed", "malformed"}
        assert {s["reason"] for s in sampled(exposition, "engage_dead_letters_total")} == {
            "malformed_json", "missing_field"}
        lag = sampled(exposition, "engage_faust_topic_partition_end_offset")
        assert {s["topic"] for s in lag} >= {names.interactions}
        assert sampled(exposition, "process_resident_memory_bytes")

        with prometheus(tmp_path, {"engage-worker": f"127.0.0.1:{worker.metrics_port}"}) as prom:
            assert eventually(lambda: api(prom, "query", query='up{job="engage-worker"} == 1')[
                "result"]), "Prometheus never scraped the worker"
            for query in dashboard_queries():
                promql = query.replace("$__rate_interval", "1m").replace("$job", ".+")
                if promql.startswith("label_values("):
                    continue  # a Grafana function, not PromQL
                api(prom, "query", query=promql)  # parses and evaluates, or the API says why
            assert api(prom, "query", query='sum(engage_events_consumed_total{job=~".+"})')[
                "result"][0]["value"][1] == str(len(records))
            firing = api(prom, "alerts")["alerts"]
            assert [a["labels"]["alertname"] for a in firing if a["state"] == "firing"] == []

            stop_worker(worker.proc)

            def worker_down_firing() -> list[dict[str, Any]]:
                return [a for a in api(prom, "alerts")["alerts"]
                        if a["labels"]["alertname"] == "EngageWorkerDown"
                        and a["state"] == "firing"]

            down = eventually(worker_down_firing, timeout_s=60)
            assert down and down[0]["labels"]["instance"] == f"127.0.0.1:{worker.metrics_port}"

    lines = [line for line in (tmp_path / "worker.log").read_text().splitlines()
             if line.startswith("{")]
    logged = [json.loads(line) for line in lines]
    assert logged and all({"time", "level", "logger", "message"} <= set(r) for r in logged)
    assert any(r["level"] == "INFO" for r in logged)
