"""The gateway's model names and providers, for pages below the gateway that offer them as choices.

accounts and billing may not import the gateway (layers: core <- accounts <- billing <- gateway),
yet their admin forms and filters offer the models it serves. Composition registers the source at
start-up (llmur/admin_site.py); until then, and in processes that never register one, the lists are empty.
"""
from __future__ import annotations

from collections.abc import Callable

_models: Callable[[], list[str]] = list
_providers: Callable[[], list[str]] = list
_deployments: Callable[[], dict[str, str]] = dict


def catalog_provide(*, models: Callable[[], list[str]], providers: Callable[[], list[str]],
                    deployments: Callable[[], dict[str, str]]) -> None:
    """models and providers: names; deployments: deployment id → a name people read (model @ upstream)."""
    global _models, _providers, _deployments
    _models, _providers, _deployments = models, providers, deployments


def deployment_labels() -> dict[str, str]:
    return dict(_deployments())


def model_names() -> list[str]:
    return sorted(set(_models()))


def provider_names() -> list[str]:
    return sorted(set(_providers()))
