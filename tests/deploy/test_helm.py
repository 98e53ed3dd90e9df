"""helm/llmur: values, schema and templates checked statically; rendered and linted by real Helm when present.

Helm comes either as the `helm` binary on PATH or as helm-python-sdk (Helm's Go SDK as a shared
library, pinned in requirements-test.txt). Rendering runs in a subprocess so a crash in native
code cannot take the test session down. The static checks run in any case.
"""
from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys

import jsonschema
import pytest
import yaml

from tests.conftest import ROOT

CHART = ROOT / "helm" / "llmur"
TEMPLATES = CHART / "templates"
WORKLOADS = ["web-deployment.yaml", "worker-deployment.yaml", "beat-deployment.yaml", "migrate-job.yaml"]
SECRETS = {"applicationSecret": "a" * 40, "masterKey": "sk-master-test", "redisUrl": "redis://redis:6379/0",
           "databaseUrl": "postgresql://llmur:pw@postgres:5432/llmur"}


def _values() -> dict:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def _schema() -> dict:
    return json.loads((CHART / "values.schema.json").read_text())


def _template_text() -> str:
    return "\n".join(p.read_text() for p in sorted(TEMPLATES.iterdir()) if p.is_file())


# --------------------------------------------------------------------------- static checks

def test_every_values_reference_in_the_templates_exists_in_values_yaml():
    values = _values()
    references = set(re.findall(r"\.Values\.([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*)", _template_text()))
    assert len(references) > 30
    missing = []
    for reference in sorted(references):
        node = values
        for part in reference.split("."):
            if not isinstance(node, dict) or part not in node:
                missing.append(reference)
                break
            node = node[part]
    assert missing == []


def test_values_yaml_validates_against_the_schema():
    schema = _schema()
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(_values())


@pytest.mark.parametrize("path, value", [
    ("web.replicaCount", "two"),
    ("securityContext.readOnlyRootFilesystem", False),
    ("podSecurityContext.runAsNonRoot", False),
    ("config.application_secret", "from-values"),
    ("secrets.applicationSecret", "short"),
    ("secrets.databaseUrl", "ftp://db/llmur"),
    ("web.autoscaling.targetCPUUtilizationPercentage", 150),
    ("wbe", {}),
])
def test_the_schema_rejects_a_wrong_value(path, value):
    values = copy.deepcopy(_values())
    node = values
    *parents, last = path.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(_schema()).validate(values)


def test_values_yaml_is_documented_line_by_line():
    """Every key has a comment right above it; only cpu/memory amounts and list items speak for themselves."""
    undocumented = []
    previous = ""
    for number, line in enumerate((CHART / "values.yaml").read_text().splitlines(), 1):
        key = re.match(r"^(\s*)([A-Za-z][\w-]*):", line)
        if key and not previous.lstrip().startswith("#") and key.group(2) not in ("cpu", "memory"):
            if not previous.lstrip().startswith("- "):
                undocumented.append(f"{number}: {line.strip()}")
        if line.strip():
            previous = line
    # Keys inside list items (ingress.hosts[].paths) are part of an example entry.
    assert [u for u in undocumented if not u.split(": ", 1)[1].startswith(("paths", "pathType"))] == []


def test_workloads_run_non_root_with_a_read_only_root_filesystem():
    values = _values()
    assert values["podSecurityContext"]["runAsNonRoot"] is True and values["podSecurityContext"]["runAsUser"] > 0
    assert values["securityContext"]["readOnlyRootFilesystem"] is True
    assert values["securityContext"]["allowPrivilegeEscalation"] is False
    assert values["securityContext"]["capabilities"]["drop"] == ["ALL"]
    helpers = (TEMPLATES / "_helpers.tpl").read_text()
    assert "toYaml .Values.podSecurityContext" in helpers
    for name in WORKLOADS:
        text = (TEMPLATES / name).read_text()
        assert 'include "llmur.podSpecCommon"' in text, name
        assert "toYaml .Values.securityContext" in text, name
        assert 'include "llmur.volumeMounts"' in text, name  # /tmp and /app/var are the only writable paths


def test_web_probes_hook_job_hpa_and_pdb_are_in_the_templates():
    web = (TEMPLATES / "web-deployment.yaml").read_text()
    assert re.search(r"livenessProbe:\s+httpGet:\s+path: /health/liveliness", web)
    assert re.search(r"readinessProbe:\s+httpGet:\s+path: /health/readiness", web)
    job = (TEMPLATES / "migrate-job.yaml").read_text()
    assert re.search(r"kind: Job\n(.*\n)*?\s+\"helm.sh/hook\": pre-install,pre-upgrade", job)
    assert "kind: HorizontalPodAutoscaler" in (TEMPLATES / "hpa.yaml").read_text()
    assert "kind: PodDisruptionBudget" in (TEMPLATES / "pdb.yaml").read_text()


# --------------------------------------------------------------------------- rendered by Helm

_SDK_RENDER = r"""
import json, sys
import helm_python as helm
chart_path, values = sys.argv[1], json.loads(sys.argv[2])
report = helm.lint(chart_path, values, strict=True)
errors = [m["error"] for m in report["messages"] if m["severity"] >= 2] + report["errors"]
try:
    manifests = helm.Chart.load(chart_path).render(values, name="prod", namespace="ai", is_install=True)
    out = {"lint_errors": errors, "manifests": "\n---\n".join(v for k, v in sorted(manifests.items())
                                                              if not k.endswith("NOTES.txt"))}
except helm.HelmError as exc:
    out = {"lint_errors": errors, "render_error": str(exc)}
print(json.dumps(out))
"""


def _render_with_sdk(values: dict) -> dict:
    result = subprocess.run([sys.executable, "-c", _SDK_RENDER, str(CHART), json.dumps(values)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


def _render_with_binary(values: dict, tmp_path) -> dict:
    values_file = tmp_path / "values.json"
    values_file.write_text(json.dumps(values))
    lint = subprocess.run(["helm", "lint", "--strict", str(CHART), "-f", str(values_file)],
                          capture_output=True, text=True, timeout=120)
    rendered = subprocess.run(["helm", "template", "prod", str(CHART), "--namespace", "ai", "-f", str(values_file)],
                              capture_output=True, text=True, timeout=120)
    out = {"lint_errors": [] if lint.returncode == 0 else [lint.stdout + lint.stderr]}
    if rendered.returncode == 0:
        out["manifests"] = rendered.stdout
    else:
        out["render_error"] = rendered.stderr
    return out


def _renderers() -> list:
    found = []
    if shutil.which("helm"):
        found.append("binary")
    probe = subprocess.run([sys.executable, "-c", "import helm_python"], capture_output=True)
    if probe.returncode == 0:
        found.append("sdk")
    return found or [pytest.param("none", marks=pytest.mark.skip(reason="no helm binary and no helm-python-sdk"))]


@pytest.fixture(params=_renderers())
def render(request, tmp_path):
    def run(values: dict) -> dict:
        if request.param == "binary":
            return _render_with_binary(values, tmp_path)
        return _render_with_sdk(values)
    return run


def _objects(result: dict) -> dict[tuple[str, str], dict]:
    assert "render_error" not in result, result.get("render_error")
    docs = [d for d in yaml.safe_load_all(result["manifests"]) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def test_helm_lint_passes_and_the_rendered_chart_is_production_shaped(render, tmp_path):
    result = render({"secrets": SECRETS, "ingress": {"enabled": True}, "serviceMonitor": {"enabled": True}})
    assert result["lint_errors"] == []
    objects = _objects(result)

    pods = {name: obj["spec"]["template"]["spec"] for (kind, name), obj in objects.items()
            if kind in ("Deployment", "Job")}
    assert set(pods) == {"prod-llmur-web", "prod-llmur-worker", "prod-llmur-beat", "prod-llmur-migrate"}
    for name, pod in pods.items():
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == 10001, name
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
            assert {m["mountPath"] for m in container["volumeMounts"]} == {"/etc/llmur", "/tmp", "/app/var"}
            env = {e["name"]: e for e in container["env"]}
            assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "database-url"
            assert env["DATABASE_AUTO_MIGRATE"]["value"] == "false"
            assert container["args"][0] == name.rsplit("-", 1)[1]

    web = objects[("Deployment", "prod-llmur-web")]
    container = web["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/liveliness"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/readiness"
    assert container["resources"]["requests"]["cpu"] == "500m"
    assert "replicas" not in web["spec"]  # the HPA owns the count

    hpa = objects[("HorizontalPodAutoscaler", "prod-llmur-web")]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "prod-llmur-web"}
    pdb = objects[("PodDisruptionBudget", "prod-llmur-web")]
    assert pdb["spec"]["selector"]["matchLabels"] == web["spec"]["selector"]["matchLabels"]

    beat = objects[("Deployment", "prod-llmur-beat")]
    assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"]["type"] == "Recreate"

    job = objects[("Job", "prod-llmur-migrate")]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    for kind in ("ConfigMap", "Secret"):
        hook = objects[(kind, "prod-llmur-migrate")]["metadata"]["annotations"]
        assert hook["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert int(hook["helm.sh/hook-weight"]) < int(job["metadata"]["annotations"]["helm.sh/hook-weight"])

    assert objects[("Service", "prod-llmur")]["spec"]["selector"] == web["spec"]["selector"]["matchLabels"]
    assert ("Ingress", "prod-llmur") in objects
    monitor = objects[("ServiceMonitor", "prod-llmur")]
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"


def test_rendered_config_file_is_accepted_by_llmur(render, tmp_path):
    from llmur.config import load_config

    values = {"secrets": SECRETS, "config": {"model_list": [
        {"model_name": "gpt-4o", "litellm_params": {"model": "openai/gpt-4o", "api_key": "os.environ/OPENAI_API_KEY"}}]}}
    objects = _objects(render(values))
    config = tmp_path / "config.yaml"
    config.write_text(objects[("ConfigMap", "prod-llmur")]["data"]["config.yaml"])
    secret = objects[("Secret", "prod-llmur")]["stringData"]
    settings = load_config(config, env={
        "LLMUR_VAR_DIR": str(tmp_path), "LLMUR_APPLICATION_SECRET": secret["application-secret"],
        "LLMUR_MASTER_KEY": secret["master-key"], "DATABASE_URL": secret["database-url"],
        "REDIS_URL": secret["redis-url"], "OPENAI_API_KEY": "sk-upstream"})
    assert settings.application_secret == SECRETS["applicationSecret"]
    assert settings.master_keys == [SECRETS["masterKey"]]
    assert (settings.database.engine, settings.cache.engine) == ("postgres", "redis")
    assert [m.model_name for m in settings.config.model_list] == ["gpt-4o"]
    assert settings.warnings == []


def test_existing_secret_replaces_the_charts_secret(render):
    objects = _objects(render({"secrets": {"existingSecret": "llmur-credentials"}}))
    assert not [key for key in objects if key[0] == "Secret"]
    for (kind, name), obj in objects.items():
        if kind in ("Deployment", "Job"):
            env = {e["name"]: e for e in obj["spec"]["template"]["spec"]["containers"][0]["env"]}
            assert env["LLMUR_MASTER_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "llmur-credentials", name


def test_missing_secrets_fail_rendering_with_a_message_naming_the_value(render):
    result = render({})
    assert "secrets.applicationSecret is required (or set secrets.existingSecret)" in result.get("render_error", "")
