"""/model/new, /model/info, /model/delete: deployments stored in the database beside the config's.

What a caller may do and see follows accounts.policy.deployments: proxy admins manage deployments
and see their upstream details (never a secret); everyone else sees only the models they may use.
"""
from __future__ import annotations

from typing import Any

from django.conf import settings
from ninja import Field, Router, Schema
from pydantic import ConfigDict

from accounts import policy
from accounts.api import management_auth, self_key_auth
from accounts.policy import Actor
from accounts.schemas import Out
from gateway import model_services
from gateway.deployments import config_deployment_id
from gateway.models import ModelDeployment
from llmur.core.errors import LlmurError, shown

router = Router(auth=management_auth, tags=["Models"])


class ModelNewIn(Schema):
    model_config = ConfigDict(extra="ignore", protected_namespaces=())
    model_name: str
    litellm_params: dict[str, Any]
    model_info: dict[str, Any] | None = None


class ModelDeleteIn(Schema):
    id: str = Field(..., description="The deployment's model_info.id.")


class DeploymentOut(Out):
    model_name: str
    litellm_params: dict[str, Any]
    model_info: dict[str, Any]


class ModelNewOut(DeploymentOut):
    model_id: str


class ModelInfoOut(Out):
    data: list[DeploymentOut]


class ModelDeleteOut(Out):
    message: str
    id: str


def deployment_out(d: ModelDeployment) -> dict[str, Any]:
    return {"model_name": d.model_name, "litellm_params": model_services.public_params(d.litellm_params),
            "model_info": {**(d.model_info or {}), "id": d.deployment_id,
                           "db_model": d.source == ModelDeployment.Source.DATABASE, "is_active": d.is_active,
                           "created_at": d.created_at.isoformat(), "updated_at": d.updated_at.isoformat()}}


@router.post("/model/new", response=ModelNewOut,
             summary="Add a deployment; every worker serves it within seconds, no restart.")
def model_new(request, body: ModelNewIn):
    actor: Actor = request.auth
    policy.require_may_manage_models(actor, "add models")
    deployment = model_services.deployment_create(by=actor, model_name=body.model_name,
                                                  litellm_params=body.litellm_params, model_info=body.model_info)
    return {"model_id": deployment.deployment_id, **deployment_out(deployment)}


def config_deployments() -> list[dict[str, Any]]:
    """The config file's model_list as this process loaded it (the file, not the database, is its truth)."""
    out = []
    for index, entry in enumerate(settings.LLMUR.config.model_list):
        params = model_services.public_params(entry.litellm_params.model_dump(exclude_none=True),
                                              secret_note="(config file)")
        out.append({"model_name": entry.model_name, "litellm_params": params,
                    "model_info": {**entry.model_info, "id": config_deployment_id(entry, index), "db_model": False,
                                   "is_active": True}})
    return out


@router.get("/model/info", response=ModelInfoOut, auth=self_key_auth,
            summary="Deployments the caller may use (a proxy admin: all, with upstream details); never secrets.")
def model_info(request, litellm_model_id: str | None = None, model_name: str | None = None):
    actor: Actor = request.auth
    rows = config_deployments() + [deployment_out(d) for d in ModelDeployment.objects.filter(
        is_active=True, source=ModelDeployment.Source.DATABASE)]
    if litellm_model_id:
        rows = [r for r in rows if r["model_info"]["id"] == litellm_model_id]
    if model_name:
        rows = [r for r in rows if r["model_name"] == model_name]
    return {"data": policy.models_shown_to(actor, rows)}


@router.post("/model/delete", response=ModelDeleteOut)
def model_delete(request, body: ModelDeleteIn):
    actor: Actor = request.auth
    policy.require_may_manage_models(actor, "delete models")
    deployment = ModelDeployment.objects.filter(deployment_id=body.id).first()
    if deployment is None:
        raise LlmurError(404, "not_found_error", f"No deployment with id {shown(body.id)!r}; see /model/info.", param="id",
                         code="404")
    model_services.deployment_delete(by=actor, deployment=deployment)
    return {"message": f"Model {body.id} deleted.", "id": body.id}
