"""The probes and the scrape, served outside the API: /health/liveliness, /health/readiness, /metrics.

What they report is decided on the floor (llmur/core/health.py, llmur/core/collectors.py); these
views only answer HTTP and, for /metrics, check who is asking.
"""
from __future__ import annotations

import ipaddress
from functools import lru_cache

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST

from gateway import auth
from llmur import __version__
from llmur.core import collectors, health
from llmur.core.errors import LlmurError


def liveliness(request) -> JsonResponse:
    status, body = health.liveness()
    return JsonResponse(body, status=status)


def readiness(request) -> JsonResponse:
    """llmur's own fields, plus those LiteLLM's clients read: `db` (the database's state), `cache`, and
    `litellm_version`, which carries llmur's version (there is no LiteLLM inside)."""
    status, body = health.readiness()
    body.update({"db": body["database"], "llmur_version": __version__, "litellm_version": __version__})
    return JsonResponse(body, status=status)


@lru_cache(maxsize=1)
def _allowed_networks() -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in settings.LLMUR.config.metrics.allowed_ips)


def _address_allowed(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in _allowed_networks())


async def metrics_view(request) -> HttpResponse:
    """GET /metrics for Prometheus: the master key as bearer token, or a client address in metrics.allowed_ips."""
    if not settings.LLMUR.config.metrics.enabled:
        return HttpResponse(status=404)
    if not _address_allowed(request.META.get("REMOTE_ADDR", "")):
        try:
            principal = await auth.authenticate(auth.key_from_headers(request.META))
        except LlmurError as error:
            return _error(error)
        if not principal.is_master:
            return _error(LlmurError(403, "permission_error", "GET /metrics needs the master key (or a client "
                                     "address in metrics.allowed_ips)."))
    # The collectors behind it use the ORM, which is sync-only.
    return HttpResponse(await sync_to_async(collectors.render)(), content_type=CONTENT_TYPE_LATEST)


def _error(error: LlmurError) -> JsonResponse:
    return JsonResponse(error.openai_body(), status=error.status)
