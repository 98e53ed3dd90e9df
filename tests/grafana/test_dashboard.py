"""docker/grafana: every PromQL expression of the dashboard names metrics a live /metrics exports."""
from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from decimal import Decimal

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT, chat_status, mock_model_list, start_gateway
from tests.factories import make_key

DASHBOARD = ROOT / "docker" / "grafana" / "dashboards" / "llmur.json"
HELM_COPY = ROOT / "helm" / "llmur" / "dashboards" / "llmur.json"

# PromQL words that are not metric names: aggregation modifiers, binary-operator keywords, set operators.
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset",
             "inf", "nan"}


def _expressions(dashboard: dict) -> list[str]:
    found = []
    for panel in dashboard["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            found += [target["expr"] for target in inner.get("targets", [])]
    return found


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers not followed by "(" outside {…}, […] and by (…)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)                   # label values, e.g. "$model"
    text = re.sub(r"\{[^}]*\}", "", text)                                # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)                               # range selectors
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$])([A-Za-z_:][\w:]*)\s*(\()?", text):
        word, call = match.group(1), match.group(2)
        if not call and word.lower() not in _KEYWORDS:
            names.add(word)
    return names


def test_metric_names_are_read_from_promql_without_functions_labels_or_ranges():
    expr = ('histogram_quantile(0.95, sum by (le, deployment) (rate(llmur_upstream_duration_seconds_bucket'
            '{model=~"$model", x="a(b)"}[$__rate_interval]))) / on (model) clamp_min(llmur_requests_total, 1e-9)')
    assert metric_names(expr) == {"llmur_upstream_duration_seconds_bucket", "llmur_requests_total"}


@pytest.fixture
def served_metrics(django_db_setup, transactional_db, fake_provider, redis_client):
    """The exposition of a live server after plain, streamed, cached, refused and failed-over requests."""
    from accounts.models import Project, Team

    team = Team.objects.create(name="grafana-team", max_budget=Decimal("10"), spend=Decimal("2.5"))
    project = Project.objects.create(name="grafana-project", team=team, max_budget=Decimal("5"))
    keys = {}
    for name, fields in (("team", {"team": team, "project": project}), ("limited", {"rpm_limit": 1})):
        keys[name] = make_key(**fields).plaintext

    v1 = f"{fake_provider.url}/v1"
    models = mock_model_list(fake_provider.url)
    models[0]["model_info"] = {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002}   # mock-gpt has a price
    models += [
        {"model_name": "flaky", "litellm_params": {"model": "openai/mock-500", "api_base": v1},
         "model_info": {"id": "flaky-500"}},
        {"model_name": "flaky", "litellm_params": {"model": "openai/mock-gpt", "api_base": v1},
         "model_info": {"id": "flaky-ok"}},
    ]
    server = start_gateway({"model_list": models,
                            "litellm_settings": {"cache": True, "cache_params": {"type": "local", "ttl": 60}},
                            "router_settings": {"allowed_fails": 0, "cooldown_time": 60}})
    try:
        statuses = [chat_status(server.url, keys["team"], content="grafana"), chat_status(server.url, keys["team"], content="grafana"),   # a miss, then a hit
                    chat_status(server.url, keys["team"], stream=True, content="grafana"),
                    chat_status(server.url, keys["limited"], content="grafana"), chat_status(server.url, keys["limited"], content="grafana")]
        assert statuses == [200, 200, 200, 200, 429]
        # The failing deployment cools down once the shuffle picks it (the request is retried on the other).
        for attempt in range(20):
            assert chat_status(server.url, server.master_key, "flaky", content=f"attempt {attempt}") == 200  # not cached
            text = _scrape(server)
            if re.search(r'^llmur_deployment_cooldown_seconds\{deployment="flaky-500"\}', text, re.M):
                break
        yield text
    finally:
        server.stop()


def _scrape(server) -> str:
    request = urllib.request.Request(f"{server.url}/metrics", headers={"Authorization": f"Bearer {server.master_key}"})
    with urllib.request.urlopen(request, timeout=20) as response:
        return response.read().decode()


def test_every_promql_expression_names_only_metrics_that_metrics_exports(served_metrics):
    exported = {sample.name for family in text_string_to_metric_families(served_metrics)
                for sample in family.samples}
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = _expressions(dashboard)
    used = set().union(*(metric_names(expr) for expr in expressions))
    # What the issue asks the board to show, each read from its own metric.
    assert {"llmur_spend_usd_total", "llmur_requests_total", "llmur_request_duration_seconds_bucket",
            "llmur_gateway_overhead_seconds_bucket", "llmur_response_cache_lookups_total",
            "llmur_budget_used_ratio", "llmur_spend_queue_lag_seconds"} <= used
    missing = {expr: sorted(metric_names(expr) - exported) for expr in expressions if metric_names(expr) - exported}
    assert missing == {}, f"not in /metrics: {missing}"

    # Spend is broken down by team, project and model: the labels the panels group by are exported and filled.
    spend = [s for family in text_string_to_metric_families(served_metrics) for s in family.samples
             if s.name == "llmur_spend_usd_total"]
    assert spend and all(s.labels["team"] and s.labels["project"] for s in spend if s.labels["model"] == "mock-gpt")
    groupings = {m.group(1) for expr in expressions
                 if "llmur_spend_usd_total" in expr for m in [re.search(r"sum by \((\w+)\)", expr)] if m}
    assert {"team", "project", "model"} <= groupings


def test_helm_chart_ships_the_same_dashboard():
    assert HELM_COPY.read_bytes() == DASHBOARD.read_bytes()
    template = (ROOT / "helm" / "llmur" / "templates" / "grafana-dashboard-configmap.yaml").read_text()
    assert '.Files.Get "dashboards/llmur.json"' in template


def test_compose_profile_provisions_prometheus_and_grafana_with_the_dashboard():
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["observability"]
    for volume in services["grafana"]["volumes"] + services["prometheus"]["volumes"]:
        source = volume.split(":", 1)[0]
        if source.startswith("./"):
            assert (ROOT / "docker" / source).exists(), volume
    scrape = yaml.safe_load((ROOT / "docker" / "prometheus.yml").read_text())["scrape_configs"][0]
    assert scrape["metrics_path"] == "/metrics" and scrape["static_configs"][0]["targets"] == ["web:8082"]
    provider = yaml.safe_load((ROOT / "docker/grafana/provisioning/dashboards/llmur.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
