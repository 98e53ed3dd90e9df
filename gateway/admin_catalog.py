"""What the pages below the gateway offer as choices: its model names, providers and deployment names."""
from __future__ import annotations

from typing import Any

from gateway.models import ModelDeployment


def _models() -> list[str]:
    return list(ModelDeployment.objects.filter(is_active=True).order_by().values_list("model_name", flat=True)
                .distinct())


def _providers() -> list[str]:
    return list(ModelDeployment.objects.order_by().values_list("provider", flat=True).distinct())


def deployment_label(deployment: ModelDeployment) -> str:
    """A deployment as people name it: its model group and upstream model (gpt-4o → openai/gpt-4o)."""
    upstream = (deployment.litellm_params or {}).get("model", "")
    return f"{deployment.model_name} → {upstream}" if upstream else deployment.model_name


def _deployments() -> dict[str, str]:
    return {d.deployment_id: deployment_label(d) for d in ModelDeployment.objects.only(
        "deployment_id", "model_name", "litellm_params")}


def catalog_for_admin() -> dict[str, Any]:
    return {"models": _models, "providers": _providers, "deployments": _deployments}
