"""Typed state that flows through the request pipeline: authenticate → authorize → limits →
route → call → account. Each step reads what earlier steps set and fills its own part, so the
limits/spend and router code plug in without touching handlers.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any


@dataclass(slots=True, frozen=True)
class EntityLimits:
    """Budget and rate limits of one entity (key, user, project, team or organization)."""

    kind: str                      # "key" | "user" | "project" | "team" | "organization"
    id: int
    max_budget: Decimal | None = None
    soft_budget: Decimal | None = None
    budget_duration: str = ""
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_parallel_requests: int | None = None
    # For messages a client reads ("team 'research' budget exceeded"); falls back to the id.
    name: str = ""


@dataclass(slots=True, frozen=True)
class Principal:
    """Who is calling, as cached after authentication: a master key, or a virtual key and its owners."""

    is_master: bool
    key_id: int | None = None
    key_hash: str = ""
    display: str = ""
    alias: str = ""
    user_id: int | None = None
    team_id: int | None = None
    project_id: int | None = None
    organization_id: int | None = None
    # None: every model; otherwise the intersection of the key's and its owners' allow-lists.
    allowed_models: frozenset[str] | None = None
    # Limits of the key and of each owner, in the order key, user, project, team, organization.
    limits: tuple[EntityLimits, ...] = ()
    # Provider name → encrypted API key of the key's project (decrypted only for the call).
    project_credentials: dict[str, str] = field(default_factory=dict)
    expires_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # Requested name → model group: the team's aliases overlaid with the key's (gateway/aliases.py).
    aliases: dict[str, str] = field(default_factory=dict)
    # Prompts and answers are stored (redacted) when the key, its project or its team asks for it.
    log_requests: bool = False


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class RequestContext:
    """One gateway request from arrival to its spend event."""

    request_id: str
    call_type: str                 # "chat" | "completion" | "embedding" | "messages"
    model: str                     # model group the client asked for
    body: dict[str, Any]
    stream: bool = False
    principal: Principal | None = None
    deployment: Any = None         # the deployment chosen by the router
    deployment_id: str = ""
    provider: str = ""
    reservation: Any = None        # what limits.admit reserved; limits.settle releases it
    usage: Usage = field(default_factory=Usage)
    cost: Decimal = Decimal(0)
    http_status: int = 200
    success: bool = True
    cache_hit: bool = False
    end_user: str = ""
    started_at: datetime | None = None
    started_monotonic: float = field(default_factory=time.monotonic)
    first_byte_monotonic: float | None = None
    ended_monotonic: float | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
