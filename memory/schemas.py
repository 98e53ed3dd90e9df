"""Schemas of the memory management API (memory/api.py)."""
from __future__ import annotations

from datetime import datetime

from ninja import Field, Schema

from memory.selectors import summary_text


class SummaryOut(Schema):
    id: int
    memory_id: str = Field(description="The stable id of this (scope, end user) pair.")
    scope: str = Field(description='"project:<id>", "team:<id>" or "key:<id>": where the summary is injected.')
    end_user: str = Field(description="The requests' `user`; empty for the key's owner.")
    session_id: str
    model: str
    turns: int
    prompt_tokens: int
    completion_tokens: int
    cost: str
    key_id: int | None
    project_id: int | None
    team_id: int | None
    session_started_at: datetime
    session_ended_at: datetime
    created_at: datetime
    expires_at: datetime


class SummaryDetailOut(SummaryOut):
    summary: str


class SummaryListOut(Schema):
    data: list[SummaryOut]


class SummaryDeletedOut(Schema):
    deleted: int = Field(description="The id of the summary deleted.")


class EndUserForgetIn(Schema):
    end_user: str = Field(..., min_length=1, max_length=200, description="The `user` the requests named.")


class ForgetOut(Schema):
    end_user: str
    deleted_summaries: int
    deleted_turns: int


def summary_out(row, *, with_text: bool = False) -> dict:
    out = {"id": row.pk, "memory_id": str(row.subject.public_id), "scope": row.subject.scope,
           "end_user": row.subject.end_user, "session_id": row.session_id, "model": row.model, "turns": row.turns,
           "prompt_tokens": row.prompt_tokens, "completion_tokens": row.completion_tokens, "cost": str(row.cost),
           "key_id": row.key_id, "project_id": row.project_id, "team_id": row.team_id,
           "session_started_at": row.session_started_at, "session_ended_at": row.session_ended_at,
           "created_at": row.created_at, "expires_at": row.expires_at}
    if with_text:
        out["summary"] = summary_text(row)
    return out
