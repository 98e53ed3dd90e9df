"""Deployments: the config's model_list mirrored into ModelDeployment, beside database-added ones."""
from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from django.db import transaction

from gateway.models import ModelDeployment

if TYPE_CHECKING:
    from llmur.config import ModelEntry

# Params that hold provider secrets: never copied into the database from the config file.
SECRET_PARAMS = frozenset({"api_key", "aws_secret_access_key", "aws_access_key_id", "vertex_credentials"})


def provider_of(model: str) -> str:
    """`openai/gpt-4o` → openai; a bare name is OpenAI-compatible, as LiteLLM treats it."""
    return model.split("/", 1)[0].lower() if "/" in model else "openai"


def config_deployment_id(entry: "ModelEntry", index: int) -> str:
    explicit = entry.model_info.get("id")
    if explicit:
        return str(explicit)[:64]
    params = entry.litellm_params
    basis = f"{index}|{entry.model_name}|{params.model}|{params.api_base or ''}"
    return "cfg-" + hashlib.sha256(basis.encode()).hexdigest()[:16]


@transaction.atomic
def deployment_sync_from_config(model_list: list["ModelEntry"]) -> int:
    """Upsert config deployments (without their secrets) and retire the ones the file dropped."""
    seen: list[str] = []
    for index, entry in enumerate(model_list):
        deployment_id = config_deployment_id(entry, index)
        params = {k: v for k, v in entry.litellm_params.model_dump(exclude_none=True).items() if k not in SECRET_PARAMS}
        ModelDeployment.objects.update_or_create(
            deployment_id=deployment_id,
            defaults={"model_name": entry.model_name, "provider": provider_of(entry.litellm_params.model),
                      "litellm_params": params, "model_info": entry.model_info,
                      "source": ModelDeployment.Source.CONFIG, "is_active": True},
        )
        seen.append(deployment_id)
    ModelDeployment.objects.filter(source=ModelDeployment.Source.CONFIG).exclude(deployment_id__in=seen).update(
        is_active=False)
    return len(seen)
