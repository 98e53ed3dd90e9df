"""/spend/logs and /global/spend/report on LiteLLM's paths, scoped to what the caller may see."""
from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from ninja import Router

from accounts import policy
from accounts.api import management_auth
from accounts.models import Organization, Team, VirtualKey
from accounts.policy import Actor
from accounts.schemas import Out
from billing import reports
from billing.models import SpendLog

router = Router(auth=management_auth, tags=["Spend"])


class SpendLogOut(Out):
    """One request as LiteLLM's /spend/logs shows it."""

    request_id: str
    call_type: str
    api_key: str | None
    key_name: str | None
    spend: float
    total_tokens: int
    prompt_tokens: int
    completion_tokens: int
    startTime: str
    endTime: str
    model: str
    model_id: str | None
    custom_llm_provider: str | None
    user: str | None
    team_id: str | None
    project_id: str | None
    organization_id: str | None
    status: str
    cache_hit: str
    end_user: str | None
    request_duration_ms: int | None
    metadata: dict[str, Any]


def _public_id(row: SpendLog, name: str) -> str | None:
    """The team's / organization's public id; a deleted one (rows outlive their owners) by its old number."""
    if getattr(row, f"{name}_id") is None:
        return None
    entity = getattr(row, name)
    return entity.public_id if entity is not None else str(getattr(row, f"{name}_id"))


def _log_out(row: SpendLog) -> dict[str, Any]:
    team_id, org_id = _public_id(row, "team"), _public_id(row, "organization")
    return {
        "request_id": row.request_id, "call_type": row.call_type, "api_key": row.key.key_hash if row.key else None,
        "key_name": row.key_display or None, "spend": float(row.cost), "total_tokens": row.total_tokens,
        "prompt_tokens": row.prompt_tokens, "completion_tokens": row.completion_tokens,
        "startTime": row.started_at.isoformat(), "endTime": row.ended_at.isoformat(), "model": row.model,
        "model_id": row.deployment or None, "custom_llm_provider": row.provider or None,
        "user": row.user.username if row.user else None, "team_id": team_id,
        "project_id": str(row.project_id) if row.project_id else None,
        "organization_id": org_id,
        "status": row.status, "cache_hit": str(row.cache_hit), "end_user": row.end_user or None,
        "request_duration_ms": row.latency_ms,
        # LiteLLM's clients read the caller's team and organization here too.
        "metadata": {**(row.metadata or {}), "user_api_key_team_id": team_id, "user_api_key_org_id": org_id},
    }


@router.get("/spend/logs", response=list[SpendLogOut],
            summary="Individual requests, newest first, a page of `limit` (default 100).")
def spend_logs(request, response: HttpResponse, api_key: str | None = None, user_id: str | None = None,
               team_id: str | None = None, model: str | None = None, request_id: str | None = None,
               start_date: str | None = None, end_date: str | None = None, limit: int = 100,
               cursor: str | None = None):
    """A full page carries an `x-next-cursor` header; pass it back as `cursor` for the next page."""
    actor: Actor = request.auth
    key = policy.key_to_read(actor, api_key) if api_key else None
    user = policy.user_to_read(actor, user_id=user_id) if user_id else None
    team = policy.team_to_read(actor, team_id) if team_id else None
    limit = max(1, min(limit, 10000))
    rows = list(reports.spend_logs(
        scope=policy.spend_scope(actor), key_id=key.pk if key else None, user_id=user.pk if user else None,
        team_id=team.pk if team else None, model=model, request_id=request_id,
        start=reports.parse_date(start_date, param="start_date"), end=reports.parse_date(end_date, param="end_date"),
        cursor=cursor, limit=limit).select_related("key", "user", "team", "organization"))
    if len(rows) == limit:
        response["x-next-cursor"] = reports.log_cursor(rows[-1])
    return [_log_out(r) for r in rows]


@router.get("/global/spend/report", response=list[dict[str, Any]],
            summary="Spend grouped by day, key, team, user, project, organization or model.")
def global_spend_report(request, start_date: str | None = None, end_date: str | None = None,
                        group_by: str = "team"):
    """group_by=team (the default) answers in LiteLLM's shape, a row per day with its teams; any other
    grouping (one or more of day, key, team, user, project, organization, model) answers flat rows."""
    actor: Actor = request.auth
    groups = [g.strip() for g in group_by.split(",") if g.strip()]
    if groups == ["team"]:
        return reports.team_spend_by_day(scope=policy.spend_scope(actor),
                                         start=reports.parse_date(start_date, param="start_date"),
                                         end=reports.parse_date(end_date, param="end_date"))
    rows = reports.spend_report(group_by=groups, scope=policy.spend_scope(actor),
                                start=reports.parse_date(start_date, param="start_date"),
                                end=reports.parse_date(end_date, param="end_date"))
    keys = VirtualKey.objects.in_bulk([r["key_id"] for r in rows if r.get("key_id")])
    public = {"team_id": Team.objects.in_bulk([r["team_id"] for r in rows if r.get("team_id")]),
              "organization_id": Organization.objects.in_bulk([r["organization_id"] for r in rows
                                                                if r.get("organization_id")])}
    for row in rows:
        # Ids as strings (teams and organizations by their public id) and money as a JSON number.
        row["spend"] = float(row["spend"])
        for name in ("team_id", "user_id", "project_id", "organization_id"):
            if name in row and row[name] is not None:
                entity = public.get(name, {}).get(row[name])
                row[name] = entity.public_id if entity is not None else str(row[name])
        if "key_id" in row:
            key = keys.get(row["key_id"])
            row["api_key"] = key.key_hash if key else None
            row["key_alias"] = key.key_alias if key else None
            row["key_name"] = key.display if key else None
    return rows


class TeamSpendOut(Out):
    """LiteLLM's /global/spend/teams: spend per day per team (by team alias), and each team's total."""

    daily_spend: list[dict[str, Any]]
    teams: list[str]
    total_spend_per_team: list[dict[str, Any]]


@router.get("/global/spend/teams", response=TeamSpendOut,
            summary="Spend per day and team over the last 30 days (or start_date..end_date).")
def global_spend_teams(request, start_date: str | None = None, end_date: str | None = None):
    actor: Actor = request.auth
    rows = reports.spend_report(group_by=["day", "team"], scope=policy.spend_scope(actor),
                                start=reports.parse_date(start_date, param="start_date"),
                                end=reports.parse_date(end_date, param="end_date"))
    return reports.team_spend_table(rows)
