"""Writes on database-stored deployments (/model/new, /model/delete, the admin's model pages).

Every worker picks a change up through gateway.registry.deployments_changed(), called after the
transaction commits. Provider secrets are stored as {"encrypted": TOKEN} (or kept as an
os.environ/NAME reference to a variable the operator allowed, accounts.policy.check_env_references)
and never returned by any read. Only a proxy admin adds, changes or deletes deployments.
"""
from __future__ import annotations

import uuid
from typing import Any

from django.db import transaction
from pydantic import ValidationError

from accounts import policy
from accounts.audit import audit_record, snapshot
from accounts.keys import secret_encrypt
from accounts.policy import Actor
from gateway import registry
from gateway.deployments import SECRET_PARAMS, provider_of
from gateway.models import ModelDeployment
from llmur.config import LitellmParams
from llmur.core.errors import LlmurError

# litellm_params whose values are headers sent upstream: names shown, values never (they carry tokens).
HEADER_PARAMS = frozenset({"extra_headers", "headers"})


def _invalid(message: str, param: str | None = None) -> LlmurError:
    return LlmurError(400, "invalid_request_error", message, param=param, code="400")


def _protect_secrets(params: dict[str, Any]) -> dict[str, Any]:
    out = dict(params)
    for name in SECRET_PARAMS:
        value = out.get(name)
        if value in (None, ""):
            out.pop(name, None)
        elif isinstance(value, str) and value.startswith("os.environ/"):
            continue
        elif isinstance(value, dict) and set(value) == {"encrypted"}:
            continue  # already protected (an update that kept the stored secret)
        else:
            out[name] = {"encrypted": secret_encrypt(str(value))}
    return out


def public_params(params: dict[str, Any], *, secret_note: str = "(encrypted)") -> dict[str, Any]:
    """litellm_params fit to show a proxy admin: secrets replaced by a note saying how they are held,
    header values hidden (issue 16.8)."""
    out: dict[str, Any] = {}
    for name, value in (params or {}).items():
        if name in SECRET_PARAMS:
            out[name] = value if isinstance(value, str) and value.startswith("os.environ/") else secret_note
        elif name in HEADER_PARAMS and isinstance(value, dict):
            out[name] = {header: "(hidden)" for header in value}
        else:
            out[name] = value
    return out


def _notify_workers() -> None:
    transaction.on_commit(registry.deployments_changed)


@transaction.atomic
def deployment_create(*, by: Actor, model_name: str, litellm_params: dict[str, Any],
                      model_info: dict[str, Any] | None = None) -> ModelDeployment:
    policy.require_may_manage_models(by, "add models")
    model_name = (model_name or "").strip()
    if not model_name:
        raise _invalid("model_name must not be empty.", "model_name")
    if not isinstance(litellm_params, dict):
        raise _invalid("litellm_params must be an object with at least `model`, e.g. openai/gpt-4o.", "litellm_params")
    policy.check_env_references(litellm_params)
    if model_info is not None and not isinstance(model_info, dict):
        raise _invalid("model_info must be an object.", "model_info")
    try:
        LitellmParams.model_validate(litellm_params)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "model"
        raise _invalid(f"litellm_params.{where}: {error['msg']}", f"litellm_params.{where}") from None
    info = dict(model_info or {})
    deployment_id = str(info.get("id") or uuid.uuid4())[:64]
    if ModelDeployment.objects.filter(deployment_id=deployment_id).exists():
        raise _invalid(f"A deployment with model_info.id {deployment_id!r} already exists.", "model_info.id")
    info["id"] = deployment_id
    deployment = ModelDeployment.objects.create(
        deployment_id=deployment_id, model_name=model_name, provider=provider_of(litellm_params["model"]),
        litellm_params=_protect_secrets(litellm_params), model_info=info, source=ModelDeployment.Source.DATABASE,
    )
    audit_record(by=by, action="create", instance=deployment, after=snapshot(deployment))
    _notify_workers()
    return deployment


@transaction.atomic
def deployment_update(*, by: Actor, deployment: ModelDeployment, **fields: Any) -> ModelDeployment:
    policy.require_may_manage_models(by, "change models")
    if deployment.source != ModelDeployment.Source.DATABASE:
        raise _invalid("This deployment comes from the config file; change it there.", "id")
    deployment = ModelDeployment.objects.select_for_update().get(pk=deployment.pk)
    before = snapshot(deployment)
    if fields.get("model_name"):
        deployment.model_name = fields["model_name"].strip()
    if "litellm_params" in fields:
        # The given params replace the stored ones, except secrets left out: those are kept as stored.
        kept = {k: v for k, v in deployment.litellm_params.items() if k in SECRET_PARAMS}
        policy.check_env_references(fields["litellm_params"] or {})
        params = {**kept, **(fields["litellm_params"] or {})}
        try:
            LitellmParams.model_validate({k: v for k, v in params.items() if k not in SECRET_PARAMS})
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error["loc"]) or "model"
            raise _invalid(f"litellm_params.{where}: {error['msg']}", f"litellm_params.{where}") from None
        deployment.litellm_params = _protect_secrets(params)
        deployment.provider = provider_of(params["model"])
    if "model_info" in fields:
        deployment.model_info = {**(fields["model_info"] or {}), "id": deployment.deployment_id}
    if "is_active" in fields:
        deployment.is_active = bool(fields["is_active"])
    deployment.save()
    audit_record(by=by, action="update", instance=deployment, before=before, after=snapshot(deployment))
    _notify_workers()
    return deployment


@transaction.atomic
def deployment_delete(*, by: Actor, deployment: ModelDeployment) -> None:
    policy.require_may_manage_models(by, "delete models")
    if deployment.source != ModelDeployment.Source.DATABASE:
        raise _invalid("This deployment comes from the config file; remove it there.", "id")
    before, pk = snapshot(deployment), deployment.pk
    deployment.delete()
    audit_record(by=by, action="delete", instance=deployment, before=before, entity_id=str(pk))
    _notify_workers()
