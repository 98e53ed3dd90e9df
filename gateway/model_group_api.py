"""/model/update, /v2/model/info and /model_group/info on LiteLLM's paths, beside gateway.model_api.

Same rules as /model/info (accounts.policy.deployments): proxy admins change deployments and see
their upstream details; everyone else sees only the model groups they may use, never a secret.
"""
from __future__ import annotations

from typing import Any

from ninja import Router, Schema
from pydantic import ConfigDict

from accounts import policy
from accounts.api import management_auth, self_key_auth
from accounts.policy import Actor
from accounts.schemas import Out
from billing import selectors as billing_selectors
from gateway import model_services
from gateway.deployments import provider_of
from gateway.model_api import ModelInfoOut, ModelNewOut, config_deployments, deployment_out
from gateway.models import ModelDeployment
from gateway.routing import wildcards
from llmur.core.errors import LlmurError

router = Router(auth=management_auth, tags=["Models"])


class ModelUpdateIn(Schema):
    model_config = ConfigDict(extra="ignore", protected_namespaces=())
    model_name: str | None = None
    litellm_params: dict[str, Any] | None = None
    model_info: dict[str, Any] | None = None


class ModelGroupOut(Out):
    model_group: str
    providers: list[str]
    deployments: int
    mode: str | None
    max_input_tokens: int | None
    max_output_tokens: int | None
    input_cost_per_token: float | None
    output_cost_per_token: float | None


class ModelGroupInfoOut(Out):
    data: list[ModelGroupOut]


def _shown(actor: Actor) -> list[dict[str, Any]]:
    rows = config_deployments() + [deployment_out(d) for d in ModelDeployment.objects.filter(
        is_active=True, source=ModelDeployment.Source.DATABASE)]
    return policy.models_shown_to(actor, rows)


@router.post("/model/update", response=ModelNewOut,
             summary="Change a deployment added at run time (model_info.id); secrets left out are kept.")
def model_update(request, body: ModelUpdateIn):
    actor: Actor = request.auth
    policy.require_may_manage_models(actor, "change models")
    deployment_id = str((body.model_info or {}).get("id") or "")
    deployment = ModelDeployment.objects.filter(deployment_id=deployment_id).first() if deployment_id else None
    if deployment is None:
        raise LlmurError(404, "not_found_error", f"No deployment with model_info.id {deployment_id[:200]!r}; see "
                         "/model/info.", param="model_info.id", code="404")
    fields = {name: getattr(body, name) for name in ("model_name", "litellm_params", "model_info")
              if name in body.model_fields_set and getattr(body, name) is not None}
    deployment = model_services.deployment_update(by=actor, deployment=deployment, **fields)
    return {"model_id": deployment.deployment_id, **deployment_out(deployment)}


@router.get("/v2/model/info", response=ModelInfoOut, auth=self_key_auth,
            summary="/model/info with LiteLLM's v2 filter names: ?model= (a model group), ?model_id=.")
def model_info_v2(request, model: str | None = None, model_id: str | None = None):
    rows = _shown(request.auth)
    if model:
        rows = [r for r in rows if r["model_name"] == model]
    if model_id:
        rows = [r for r in rows if (r.get("model_info") or {}).get("id") == model_id]
    return {"data": rows}


def _number(value: Any) -> Any:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


@router.get("/model_group/info", response=ModelGroupInfoOut, auth=self_key_auth,
            summary="The model groups the caller may use: providers, limits and prices.")
def model_group_info(request, model_group: str | None = None):
    groups: dict[str, dict[str, Any]] = {}
    for row in _shown(request.auth):
        name = row["model_name"]
        info = row.get("model_info") or {}
        group = groups.setdefault(name, {"model_group": name, "providers": [], "deployments": 0, "mode": None,
                                         "max_input_tokens": None, "max_output_tokens": None,
                                         "input_cost_per_token": None, "output_cost_per_token": None})
        group["deployments"] += 1
        provider = provider_of(str((row.get("litellm_params") or {}).get("model") or ""))
        if provider and provider not in group["providers"]:
            group["providers"].append(provider)
        group["mode"] = group["mode"] or info.get("mode")
        for field in ("max_input_tokens", "max_output_tokens", "input_cost_per_token", "output_cost_per_token"):
            # The largest across the group: what a client may send, and what a call may cost at most.
            value = _number(info.get(field))
            if value is not None and (group[field] is None or value > group[field]):
                group[field] = value
    _add_priced_models_of_wildcards(groups)
    if model_group:
        return {"data": [group for name, group in groups.items() if name == model_group]}
    return {"data": list(groups.values())}


def _add_priced_models_of_wildcards(groups: dict[str, dict[str, Any]]) -> None:
    """A wildcard group ("anthropic/*") serves names nobody listed: show the priced models it reaches
    under the names a client sends ("anthropic/claude-3-5-haiku-20241022"), as LiteLLM lists them."""
    patterns = wildcards.ordered_patterns(groups)
    if not patterns:
        return
    for price in billing_selectors.model_prices_list():
        names = [f"{price.provider}/{price.model}", price.model] if price.provider else [price.model]
        for name in names:
            pattern = next((p for p in patterns if wildcards.match(p, name) is not None), None)
            if pattern is None or name in groups:
                continue
            groups[name] = {**groups[pattern], "model_group": name,
                            "providers": [price.provider] if price.provider else list(groups[pattern]["providers"]),
                            "input_cost_per_token": float(price.input_cost_per_token),
                            "output_cost_per_token": float(price.output_cost_per_token)}
            break
